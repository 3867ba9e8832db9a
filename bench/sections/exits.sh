# shellcheck shell=bash
# Section "exits" (issue #4): the exit-cost lab. `mica bench exits` runs the test guest's
# tests=bench under mica and under its built-in raw KVM loop (the floor), side by side, and
# prints cycles and ns per operation for each exit mechanism; JSON in build/bench/exits.json.
# Sourced by scripts/bench with bench/lib.sh loaded.

echo
echo "== exits: mica vs a raw KVM loop, $(nproc) CPU(s)"
build/mica bench exits --iterations "${BENCH_EXIT_ITERATIONS:-2000}" --json build/bench/exits.json
