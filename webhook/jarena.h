/* SPDX-License-Identifier: Apache-2.0 */
/* A per-thread arena for the jansson values of one review: no malloc and free per value. */
#ifndef MESHLET_WEBHOOK_JARENA_H
#define MESHLET_WEBHOOK_JARENA_H

/*
 * A review builds and drops some hundreds of jansson values (the parsed AdmissionReview,
 * the injector's probes and warnings). Through malloc, with two server threads, that was a
 * fifth of the machine's time (arena locks, consolidation of fast bins). Between
 * jarena_begin and jarena_end, jansson allocates on the calling thread from a bump
 * allocator whose memory goes back all at once at jarena_end; outside those calls, and on
 * other threads, it uses malloc and free as usual.
 *
 * The contract: every jansson value made between jarena_begin and jarena_end is released
 * before jarena_end, and nothing jansson allocates there is passed to free() (json_dumps
 * text, for one: use jwrite instead). Values made before jarena_begin may be released
 * inside, and are freed as usual.
 */

/*
 * jarena_install - make jansson allocate through the arena functions. Once, at start-up,
 * before other threads use jansson. Without it the calls below change nothing.
 */
void jarena_install(void);

/* jarena_begin - from now on this thread's jansson values come from its arena. */
void jarena_begin(void);

/* jarena_end - back to malloc; the arena's memory is reused by the next jarena_begin. */
void jarena_end(void);

#endif
