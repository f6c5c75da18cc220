# SPDX-License-Identifier: Apache-2.0
# Latency percentile curves, one per series (bench/report.sh):
#   gnuplot -c latency.gp DATA OUT TITLE COLUMNS
# DATA is tab-separated: a header (percentile, then one name per series), then a row per
# percentile with the latency of each series in ms ("-" where there is none). The x axis
# spreads the tail out (1 / (1 - p)), as HdrHistogram's plots do.
set terminal pngcairo size 900,560 font "DejaVu Sans,10" noenhanced
set output ARG2
set datafile separator "\t"
set datafile missing "-"
set title ARG3
set logscale xy
set xrange [1:10000]
set xtics ("0%%" 1, "50%%" 2, "90%%" 10, "99%%" 100, "99.9%%" 1000, "99.99%%" 10000)
set format y "%g"
set ylabel "latency, ms (log scale)"
set grid xtics ytics mytics lw 0.5
set key below box maxrows 2 reverse Left
plot for [i=2:ARG4] ARG1 using (1 / (1 - $1 / 100)):i with linespoints lw 2 pt 7 ps 0.6 title columnheader(i)
