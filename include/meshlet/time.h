/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 3339 date-times, Go-style durations ("1h30m") and the two clocks, in UTC only. */
#ifndef MESHLET_TIME_H
#define MESHLET_TIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* Room for the longest time_format_rfc3339 output, "9999-12-31T23:59:59.999Z", and NUL. */
#define TIME_RFC3339_MAX 25

/* Room for the longest time_format_duration output, "-2562047788015h12m55.808s", and NUL. */
#define TIME_DURATION_MAX 32

/*
 * time_format_rfc3339 - format *t, in UTC, into buf (size bytes, the caller's) as
 * "2026-01-02T15:04:05Z", or "2026-01-02T15:04:05.123Z" when millis is true (the
 * nanoseconds are truncated to milliseconds, never rounded up into the next second).
 * TIME_RFC3339_MAX bytes are always enough. Neither TZ nor the locale matters.
 * Returns the length written (without the NUL); ERR_TIME_RANGE when the year is outside
 * 0000-9999 (RFC 3339 has four-digit years) or t->tv_nsec is outside [0, 1e9);
 * ERR_TRUNCATED when size is too small, leaving buf an empty string if size > 0.
 */
int time_format_rfc3339(const struct timespec *t, bool millis, char *buf, size_t size);

/*
 * time_parse_rfc3339 - parse the len bytes at s (no NUL needed; a NUL inside is an error)
 * as an RFC 3339 section 5.6 date-time: full-date "T" partial-time offset, such as
 * "2026-01-02T15:04:05Z", "1985-04-12T23:20:50.52Z" or "1996-12-19T16:39:57-08:00".
 *   - 'T' and 'Z' may be lower case; a space instead of 'T' is not accepted;
 *   - the fraction after '.' has one or more digits, of which the first nine are kept
 *     (nanoseconds) and the rest checked and dropped;
 *   - the offset is "Z" or +hh:mm / -hh:mm (up to 23:59; "-00:00" is UTC), and is applied,
 *     so *out is UTC;
 *   - second 60 is a leap second. It is accepted only where one can occur: at 23:59:60
 *     UTC (after the offset) on the last day of a month. POSIX time has no leap seconds,
 *     so it is read as 23:59:59 with the same fraction: the second repeats, as the
 *     kernel's CLOCK_REALTIME repeats it.
 * Writes *out (tv_nsec in [0, 1e9)) only on success. Returns 0; ERR_TIME_SYNTAX when s
 * does not have that shape; ERR_TIME_RANGE when a field is out of range (month 1-12,
 * day 1-28/29/30/31 by month and leap year, hour 0-23, minute 0-59, second 0-59 or a
 * leap second as above, offset hour 0-23 and minute 0-59). Shape is checked first.
 */
int time_parse_rfc3339(const char *s, size_t len, struct timespec *out);

/*
 * time_parse_duration - parse the len bytes at s (no NUL needed) as a Go-style duration
 * into *ms, in milliseconds: one or more of a decimal number followed by a unit, summed,
 * as in "90s", "1h30m", "500ms", "1.5h", "87600h"; "0" alone is also accepted.
 *   - units: "ms", "s", "m", "h" only. Not "d" (a day is not always 24 hours, and Go has
 *     no "d"), nor "ns"/"us" (finer than our milliseconds);
 *   - numbers are digits with an optional fraction ("1.5h", ".5s" and "1.s" as in Go);
 *     a fraction that is finer than a millisecond is truncated ("1.0005s" is 1000 ms),
 *     and fraction digits after the 18th are ignored;
 *   - units may repeat and come in any order ("30m1h"), as in Go;
 *   - no sign ('+' or '-'), no spaces, no upper case, nothing else.
 * Writes *ms only on success. Returns 0; ERR_DURATION_RANGE when the sum exceeds
 * INT64_MAX milliseconds (about 292 million years); ERR_DURATION_SYNTAX for anything
 * malformed, which is checked first.
 */
int time_parse_duration(const char *s, size_t len, int64_t *ms);

/*
 * time_format_duration - format ms into buf (size bytes, the caller's) in the shortest
 * Go-like form that time_parse_duration reads back: hours, minutes and seconds with
 * zero parts left out ("1h30m", "1m30s", "87600h"), the milliseconds as a fraction of
 * the seconds when the duration is 1s or more ("1.5s", "1h0.25s"), as "500ms" when it
 * is less, and "0s" for zero. A negative ms gets a leading '-' (as Go prints it, for
 * logs), which time_parse_duration does not accept. TIME_DURATION_MAX bytes are always
 * enough. Returns the length written (without the NUL) or ERR_TRUNCATED, leaving buf an
 * empty string if size > 0.
 */
int time_format_duration(int64_t ms, char *buf, size_t size);

/*
 * time_from_utc_tm - seconds since the Unix epoch of a broken-down UTC time, as timegm
 * but with no dependence on TZ. The fields must be in their ranges (tm_mon 0-11, tm_mday
 * valid for the month, and so on); nothing is normalised.
 */
int64_t time_from_utc_tm(const struct tm *tm);

/* time_now_ms - the wall clock (CLOCK_REALTIME) in milliseconds since the Unix epoch. */
int64_t time_now_ms(void);

/*
 * time_mono_ms - CLOCK_MONOTONIC in milliseconds from an arbitrary start: for deadlines
 * and intervals, which must not jump when the wall clock is set.
 */
int64_t time_mono_ms(void);

#endif
