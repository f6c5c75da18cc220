# SPDX-License-Identifier: Apache-2.0
# Simple labelled bars (bench/report.sh): gnuplot -c bars.gp DATA OUT TITLE YLABEL
# DATA is tab-separated: a header, then a row per bar: label, value, colour index.
set terminal pngcairo size 900,480 font "DejaVu Sans,10" noenhanced
set output ARG2
set datafile separator "\t"
set title ARG3
set ylabel ARG4
set style fill solid 0.85 border -1
set boxwidth 0.6
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set grid ytics lw 0.5
unset key
plot ARG1 using 0:2:3:xtic(1) skip 1 with boxes lc variable, \
     '' using 0:2:(sprintf("%.0f", $2)) skip 1 with labels offset 0,0.7
