# Shared by the script benchmarks (sourced, not run).

# The machine's busy CPU so far, in clock ticks (/proc/stat: user, nice, system, irq,
# softirq, steal): the difference over a run also holds the kernel's own threads.
busy() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat; }
