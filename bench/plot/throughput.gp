# SPDX-License-Identifier: Apache-2.0
# Throughput per candidate, one panel per measure (bench/report.sh):
#   gnuplot -c throughput.gp DATA OUT TITLE TITLE2 TITLE3 TITLE4
# DATA is tab-separated: a header, then a row per candidate: its name and three measures
# ("-" where there is none), each panel titled by TITLE2..TITLE4.
set terminal pngcairo size 1050,420 font "DejaVu Sans,10" noenhanced
set output ARG2
set datafile separator "\t"
set datafile missing "-"
set style fill solid 0.85 border -1
set boxwidth 0.7
set yrange [0:*]
set offsets 0, 0, graph 0.1, 0
set grid ytics lw 0.5
set xtics rotate by -30
unset key
set multiplot layout 1,3 title ARG3
do for [i=2:4] {
	set title ARGV[i + 2]
	plot ARG1 using 0:i:xtic(1) skip 1 with boxes lc i - 1, \
	     '' using 0:i:(sprintf(i == 4 ? "%.2f" : "%.0f", column(i))) skip 1 with labels offset 0,0.7
}
unset multiplot
