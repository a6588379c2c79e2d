# Charts of one `bench/scheduling.sh overload` run; run in the results
# directory after bench/lib/overload.py wrote overload.gp.vars and the
# overload_*.dat files.
load "overload.gp.vars"
n = words(EXPS)
set terminal pngcairo noenhanced size 860,(250 * n) font ",8"
set grid
set key inside left top
set xlabel "time (simulated s)"
set xrange [0:*]

set output "overload_queues.png"
set multiplot layout n,1 title "Waiting requests per pod (vllm:num_requests_waiting) and in nginx's flow-control queue"
do for [i=1:n] {
    e = word(EXPS,i)
    set title e
    set ylabel "waiting at the pod"
    set y2label "waiting in nginx"
    set y2tics
    set ytics nomirror
    plot for [p=0:3] "overload_".e."_pods.dat" using 1:(column(p+2)) with lines lw 1 title "pod ".p, \
         THRESHOLD with lines dt 2 lc rgb "black" title "queueDepthThreshold", \
         "overload_".e."_pods.dat" using 1:6 axes x1y2 with lines lw 2 lc rgb "gray50" title "nginx queue (right axis)"
}
unset multiplot
unset y2tics
unset y2label
set ytics mirror

set output "overload_ttft.png"
set multiplot layout n,1 title "TTFT of each admitted request by send time"
do for [i=1:n] {
    e = word(EXPS,i)
    set title e
    set ylabel "TTFT (s, log)"
    set logscale y
    plot "overload_".e."_ttft.dat" using 1:($3 == 1 ? $2 : 1/0) with points pt 7 ps 0.3 title "admitted: TTFT", \
         "overload_".e."_ttft.dat" using 1:($3 == 1 && $4 > 0 ? $2 - $4 : 1/0) with points pt 7 ps 0.2 lc rgb "orange" title "TTFT less the wait in nginx", \
         SLO with lines dt 2 lc rgb "black" title "TTFT objective"
    unset logscale y
}
unset multiplot
