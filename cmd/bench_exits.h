/* `mica bench exits` (and its internal `mica bench floor`). */
#ifndef MICA_BENCH_EXITS_H
#define MICA_BENCH_EXITS_H

/* argv[0] is "bench". Returns the exit status. */
int bench_main(int argc, char **argv);

#endif
