/* autotune.c - placeholder being written by a helper session (not built into anything yet). */
typedef int es__autotune_placeholder;
