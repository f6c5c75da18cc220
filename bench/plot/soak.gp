# SPDX-License-Identifier: Apache-2.0
# The soak's samples (bench/report.sh): gnuplot -c soak.gp DATA OUT TITLE
# DATA is bench/soak.sh's soak-rss.tsv: t, rss_client_kib, rss_server_kib, rss_ca_kib,
# rotations_client, rotations_server, with a header.
set terminal pngcairo size 900,480 font "DejaVu Sans,10" noenhanced
set output ARG2
set datafile separator "\t"
set title ARG3
set xlabel "seconds of load"
set ylabel "RSS, MiB"
set y2label "certificate rotations so far"
set yrange [0:*]
set y2range [0:*]
set ytics nomirror
# Whole rotations on the right axis, about eight tics.
stats ARG1 using 5 skip 1 nooutput
rot_step = STATS_max > 8 ? ceil(STATS_max / 8.0) : 1
set y2tics rot_step
set grid xtics ytics lw 0.5
set key bottom right box opaque
plot ARG1 using 1:($2 / 1024) skip 1 with linespoints lw 2 pt 7 ps 0.5 title "client proxy RSS", \
     '' using 1:($3 / 1024) skip 1 with linespoints lw 2 pt 7 ps 0.5 title "server proxy RSS", \
     '' using 1:5 skip 1 axes x1y2 with steps lw 1.5 dt 2 lc rgb "#1f77b4" title "client rotations", \
     '' using 1:6 skip 1 axes x1y2 with steps lw 1.5 dt 3 lc rgb "#d62728" title "server rotations"
