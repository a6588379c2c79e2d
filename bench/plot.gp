# Charts of one bench/scheduling.sh run; run in the results directory after
# bench/lib/report.py wrote plots.gp (EXPS, XLABEL, MODE) and the *.dat.
load "plots.gp"
set terminal pngcairo noenhanced size 1200,700 font ",10"
set grid
set key outside right top
n = words(EXPS)

set output "latency_vs_qps.png"
set multiplot layout 1,2 title "Latency vs load, ".MODE
set xlabel XLABEL
set ylabel "request latency mean (s)"
plot for [i=1:n] "stages_".word(EXPS,i).".dat" using 1:2 with linespoints title word(EXPS,i)
set ylabel "TTFT mean (s)"
plot for [i=1:n] "stages_".word(EXPS,i).".dat" using 1:4 with linespoints title word(EXPS,i)
unset multiplot

set output "throughput_vs_qps.png"
set title "Output tokens/s vs load, ".MODE
set ylabel "output tokens/s"
plot for [i=1:n] "stages_".word(EXPS,i).".dat" using 1:6 with linespoints title word(EXPS,i)

set output "itl_mean_vs_qps.png"
set title "ITL mean vs load, ".MODE
set ylabel "inter-token latency mean (s)"
plot for [i=1:n] "stages_".word(EXPS,i).".dat" using 1:7 with linespoints title word(EXPS,i)

set output "ttft_p90_vs_qps.png"
set title "TTFT p90 vs load, ".MODE
set ylabel "TTFT p90 (s, log scale)"
set logscale y
plot for [i=1:n] "stages_".word(EXPS,i).".dat" using 1:5 with linespoints title word(EXPS,i)
unset logscale y
unset title

rows = (n + 1) / 2
set terminal pngcairo noenhanced size 1400,(350 * rows) font ",9"
set xlabel "time (simulated s)"
set xrange [0:*]
set key inside left top

set output "waiting_queue_vs_time.png"
set multiplot layout rows,2 title "Waiting requests per pod, ".MODE
set ylabel "vllm:num_requests_waiting"
do for [i=1:n] {
    e = word(EXPS,i)
    set title e
    plot for [p=0:3] "pod_".e."_".p.".dat" using 1:2 with lines title "pod ".p
}
unset multiplot

set output "kv_cache_usage_vs_time.png"
set multiplot layout rows,2 title "KV cache usage per pod, ".MODE
set ylabel "vllm:kv_cache_usage_perc (%)"
set yrange [0:100]
do for [i=1:n] {
    e = word(EXPS,i)
    set title e
    plot for [p=0:3] "pod_".e."_".p.".dat" using 1:4 with lines title "pod ".p
}
unset multiplot
