# Training curves of a dino.c run: gnuplot -e "run='runs/x'; K=1024" data/plot.gp
# (make plot RUN=runs/x does this). Reads run/log.csv, writes run/curves.png: the loss, the
# teacher's entropy (with ln K, a uniform teacher's, when K is given), KL(teacher || student)
# and the k-NN top-1 of the periodic evaluations (--eval-every), against the step. The
# collapse study of the paper watches the middle two: centering alone drives the entropy to
# ln K, sharpening alone to 0, and KL goes to 0 in both.
# log.csv columns: step,epoch,loss,lr,wd,momentum,teacher_temp,teacher_entropy,kl,img_per_s,elapsed_s,knn_top1,knn_top5

if (!exists("run")) { print "usage: gnuplot -e \"run='DIR'\" data/plot.gp"; exit }
file = run . "/log.csv"
out = run . "/curves.png"
set datafile separator comma
set key autotitle columnhead

# pngcairo draws smoother lines; plain png (libgd) is there when cairo is not
if (strstrt(GPVAL_TERMINALS, "pngcairo") > 0) {
    set terminal pngcairo size 1200, 800 font "sans,10"
} else {
    set terminal png size 1200, 800
}
set output out

stats file using 1 nooutput
last_step = STATS_max

# Each step's value in light grey, and in colour an exponential moving average over 1% of
# the run (per-step values are noisy, one batch each; 1% keeps the average's lag invisible)
tau = last_step / 100.0 > 1 ? last_step / 100.0 : 1
a = 1 - 1 / tau
ema = 0.0
smooth(col) = (ema = ($0 == 0) ? column(col) : a * ema + (1 - a) * column(col))
set xrange [0:last_step]
set grid
set multiplot layout 2, 2 title "dino.c run " . run
set xlabel "step"

set title "DINO loss (cross-entropy teacher -> student)"
plot file using 1:3 with lines lc rgb "#c8c8c8" notitle, \
     file using 1:(smooth(3)) with lines lw 2 lc rgb "#3e4a89" title "loss (moving average)"

set title "teacher entropy"
if (exists("K")) { # from 0 (one-hot) to ln K (uniform), the two collapses
    set yrange [0:1.08 * log(K)]
    set arrow 1 from 0, log(K) to last_step, log(K) nohead dt 2 lc rgb "#6dcd59" lw 2
    set label 1 sprintf("ln K = %.2f (uniform)", log(K)) at graph 0.02, first log(K) offset 0, 0.7
}
plot file using 1:8 with lines lc rgb "#c8c8c8" notitle, \
     file using 1:(smooth(8)) with lines lw 2 lc rgb "#26828e" title "H(teacher) (moving average)"
unset arrow 1
unset label 1
set autoscale y

set title "KL(teacher || student)"
plot file using 1:9 with lines lc rgb "#c8c8c8" notitle, \
     file using 1:(smooth(9)) with lines lw 2 lc rgb "#35b779" title "KL (moving average)"

# k-NN rows are empty except at the periodic evaluations; a run without them gets a note
set title "k-NN top-1 (k = 20) during training"
set ylabel "%"
stats file using (valid(12) ? 1 : 0) nooutput
knn_points = STATS_sum
if (knn_points > 0) {
    plot file using 1:12 with linespoints pt 7 ps 0.8 lw 2 lc rgb "#440154" title "k-NN top-1 (periodic, on subsets)"
} else {
    unset xlabel
    set label 2 "no periodic k-NN in this run (train with --eval-every N)" at graph 0.5, graph 0.5 center
    set yrange [0:100]
    plot -1 notitle  # an empty panel: the line lies below the range
}
unset multiplot
print "wrote " . out
