# SPDX-License-Identifier: Apache-2.0
# RSS per candidate pair, clustered bars (bench/report.sh): gnuplot -c memory.gp DATA OUT TITLE
# DATA is tab-separated: a header (candidate, then three series names), then a row per
# candidate with three values in MiB ("-" where there is none).
set terminal pngcairo size 900,520 font "DejaVu Sans,10" noenhanced
set output ARG2
set datafile separator "\t"
set datafile missing "-"
set title ARG3
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set ylabel "MiB, client + server proxy"
set grid ytics lw 0.5
set key top left box opaque
plot ARG1 using 2:xtic(1) title columnheader(2), \
     '' using 3 title columnheader(3), \
     '' using 4 title columnheader(4), \
     '' using ($0 - 0.25):2:(sprintf("%.1f", $2)) skip 1 with labels offset 0,0.7 notitle, \
     '' using ($0):3:(sprintf("%.1f", $3)) skip 1 with labels offset 0,0.7 notitle, \
     '' using ($0 + 0.25):4:(sprintf("%.1f", $4)) skip 1 with labels offset 0,0.7 notitle
