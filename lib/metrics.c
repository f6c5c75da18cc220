/* SPDX-License-Identifier: Apache-2.0 */
/* Prometheus counters and histograms updated with atomics, written as exposition text. */
#include <math.h>
#include <stdlib.h>

#include "meshlet/metrics.h"

void metrics_inc(struct metrics_counter *c, size_t i)
{
	metrics_add(c, i, 1);
}

void metrics_add(struct metrics_counter *c, size_t i, uint64_t n)
{
	if (i < METRICS_MAX_VALUES)
		atomic_fetch_add_explicit(&c->v[i], n, memory_order_relaxed);
}

uint64_t metrics_get(const struct metrics_counter *c, size_t i)
{
	return i < METRICS_MAX_VALUES ? atomic_load_explicit(&c->v[i], memory_order_relaxed) : 0;
}

void metrics_observe(struct metrics_histogram *h, uint64_t ns)
{
	double s = (double)ns / 1e9;
	size_t i = 0;

	while (i < h->nbounds && s > h->bounds[i])
		i++;
	atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&h->sum_ns, ns, memory_order_relaxed);
}

static void metrics_header(FILE *f, const char *name, const char *help, const char *type)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metrics_write_counter(FILE *f, const struct metrics_counter *c)
{
	metrics_header(f, c->name, c->help, "counter");
	if (c->label == NULL) {
		fprintf(f, "%s %llu\n", c->name, (unsigned long long)metrics_get(c, 0));
		return;
	}
	for (size_t i = 0; c->values[i] != NULL && i < METRICS_MAX_VALUES; i++)
		fprintf(f, "%s{%s=\"%s\"} %llu\n", c->name, c->label, c->values[i],
		        (unsigned long long)metrics_get(c, i));
}

void metrics_write_histogram(FILE *f, const struct metrics_histogram *h)
{
	uint64_t cumulative = 0;

	metrics_header(f, h->name, h->help, "histogram");
	for (size_t i = 0; i <= h->nbounds && i <= METRICS_MAX_BUCKETS; i++) {
		cumulative += atomic_load_explicit(&h->buckets[i], memory_order_relaxed);
		if (i < h->nbounds)
			fprintf(f, "%s_bucket{le=\"%g\"} %llu\n", h->name, h->bounds[i],
			        (unsigned long long)cumulative);
		else
			fprintf(f, "%s_bucket{le=\"+Inf\"} %llu\n", h->name,
			        (unsigned long long)cumulative);
	}
	fprintf(f, "%s_sum %.9f\n", h->name,
	        (double)atomic_load_explicit(&h->sum_ns, memory_order_relaxed) / 1e9);
	fprintf(f, "%s_count %llu\n", h->name,
	        (unsigned long long)atomic_load_explicit(&h->count, memory_order_relaxed));
}

void metrics_write_gauge(FILE *f, const char *name, const char *help, double value)
{
	metrics_header(f, name, help, "gauge");
	if (isnan(value))
		fprintf(f, "%s NaN\n", name);
	else
		fprintf(f, "%s %.17g\n", name, value);
}

char *metrics_page(void (*fill)(FILE *f, void *arg), void *arg, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);

	if (f == NULL)
		return NULL;
	fill(f, arg);
	if (fclose(f) != 0) {
		free(text);
		return NULL;
	}
	return text;
}
