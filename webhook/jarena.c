/* SPDX-License-Identifier: Apache-2.0 */
/* The per-thread bump allocator behind jansson during a review (see jarena.h). */
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <jansson.h>

#include "jarena.h"

/* The first block of each thread, kept between reviews; later ones double, up to a limit. */
#define JARENA_FIRST    (128 * 1024)
#define JARENA_STEP_MAX (8 * 1024 * 1024)
#define JARENA_ALIGN    _Alignof(max_align_t)

struct jarena_block {
	struct jarena_block *next;
	size_t size; /* bytes of data */
	size_t used;
	max_align_t data[];
};

/* This thread's blocks, the newest first; the oldest is the one that is kept. */
static _Thread_local struct jarena_block *jarena_blocks;
static _Thread_local bool jarena_on;
/* Frees a thread's kept block when the thread ends (the server stops its threads). */
static pthread_key_t jarena_key;
static pthread_once_t jarena_once = PTHREAD_ONCE_INIT;

static void jarena_thread_exit(void *block)
{
	free(block);
}

static void jarena_key_create(void)
{
	if (pthread_key_create(&jarena_key, jarena_thread_exit) != 0)
		abort();
}

static bool jarena_owns(const void *p)
{
	uintptr_t a = (uintptr_t)p;

	for (const struct jarena_block *b = jarena_blocks; b != NULL; b = b->next)
		if (a >= (uintptr_t)b->data && a < (uintptr_t)b->data + b->size)
			return true;
	return false;
}

static void *jarena_malloc(size_t size)
{
	struct jarena_block *b = jarena_blocks;
	size_t need, grow;
	void *p;

	if (!jarena_on)
		return malloc(size);
	need = (size + JARENA_ALIGN - 1) & ~(size_t)(JARENA_ALIGN - 1);
	if (need < size)
		return NULL;
	if (b == NULL || b->size - b->used < need) {
		grow = b == NULL ? JARENA_FIRST : b->size < JARENA_STEP_MAX ? b->size * 2 : b->size;
		if (grow < need)
			grow = need;
		if (grow > SIZE_MAX - sizeof(*b))
			return NULL;
		b = malloc(sizeof(*b) + grow);
		if (b == NULL)
			return NULL;
		b->next = jarena_blocks;
		b->size = grow;
		b->used = 0;
		jarena_blocks = b;
		if (b->next == NULL)
			pthread_setspecific(jarena_key, b);
	}
	p = (char *)b->data + b->used;
	b->used += need;
	return p;
}

/* Memory of the arena goes back at jarena_end; anything else is malloc's. */
static void jarena_free(void *p)
{
	if (p == NULL || (jarena_on && jarena_owns(p)))
		return;
	free(p);
}

void jarena_install(void)
{
	pthread_once(&jarena_once, jarena_key_create);
	json_set_alloc_funcs(jarena_malloc, jarena_free);
}

void jarena_begin(void)
{
	jarena_on = true;
}

void jarena_end(void)
{
	/* Every block but the first goes: one large review does not pin its memory. */
	while (jarena_blocks != NULL && jarena_blocks->next != NULL) {
		struct jarena_block *b = jarena_blocks;

		jarena_blocks = b->next;
		free(b);
	}
	if (jarena_blocks != NULL && jarena_blocks->size > JARENA_FIRST) {
		free(jarena_blocks);
		jarena_blocks = NULL;
		pthread_setspecific(jarena_key, NULL);
	}
	if (jarena_blocks != NULL)
		jarena_blocks->used = 0;
	jarena_on = false;
}
