/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus metrics: lock-free counters and histograms, and their text exposition. */
#ifndef MESHLET_METRICS_H
#define MESHLET_METRICS_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define METRICS_MAX_VALUES  16
#define METRICS_MAX_BUCKETS 16

/*
 * A counter, optionally split by one label whose values are fixed up front (an outcome,
 * a direction): counting is one atomic add, with no lookup. Define it statically:
 *	static const char *const outcomes[] = { "issued", "denied", NULL };
 *	static struct metrics_counter requests =
 *		METRICS_COUNTER("meshlet_ca_requests_total", "Requests by outcome.", "outcome",
 *				outcomes);
 */
struct metrics_counter {
	const char *name;
	const char *help;
	const char *label;         /* NULL for a counter without a label */
	const char *const *values; /* the label's values, NULL-terminated */
	_Atomic uint64_t v[METRICS_MAX_VALUES];
};

#define METRICS_COUNTER(NAME, HELP, LABEL, VALUES)                                                 \
	{                                                                                          \
		.name = (NAME), .help = (HELP), .label = (LABEL), .values = (VALUES)               \
	}

/* A histogram of durations, with bucket bounds in seconds (ascending; +Inf is implied). */
struct metrics_histogram {
	const char *name;
	const char *help;
	const double *bounds;
	size_t nbounds; /* at most METRICS_MAX_BUCKETS */
	_Atomic uint64_t buckets[METRICS_MAX_BUCKETS + 1];
	_Atomic uint64_t count;
	_Atomic uint64_t sum_ns;
};

#define METRICS_HISTOGRAM(NAME, HELP, BOUNDS)                                                      \
	{                                                                                          \
		.name = (NAME), .help = (HELP), .bounds = (BOUNDS),                                \
		.nbounds = sizeof(BOUNDS) / sizeof((BOUNDS)[0])                                    \
	}

/* metrics_inc - add one to the counter's value at index i (0 for an unlabelled one). */
void metrics_inc(struct metrics_counter *c, size_t i);

/* metrics_add - add n to the counter's value at index i. */
void metrics_add(struct metrics_counter *c, size_t i, uint64_t n);

/* metrics_get - the counter's value at index i. */
uint64_t metrics_get(const struct metrics_counter *c, size_t i);

/* metrics_observe - record one duration of ns nanoseconds. */
void metrics_observe(struct metrics_histogram *h, uint64_t ns);

/* Writers of the Prometheus text format (version 0.0.4), one metric family each. */
void metrics_write_counter(FILE *f, const struct metrics_counter *c);
void metrics_write_histogram(FILE *f, const struct metrics_histogram *h);
void metrics_write_gauge(FILE *f, const char *name, const char *help, double value);

/*
 * metrics_page - the text of a /metrics answer: runs fill(f, arg), which calls the
 * writers above on f, into memory. Returns the malloc'd text (the caller frees it) and
 * its length in *len, or NULL when out of memory.
 */
char *metrics_page(void (*fill)(FILE *f, void *arg), void *arg, size_t *len);

/* The content type of what the writers produce. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
