/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/time.c: RFC 3339 date-times (RFC examples, ranges, TZ) and Go durations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "meshlet/err.h"
#include "meshlet/time.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* A fixed-seed generator (splitmix64), so that a failure can be reproduced. */
static uint64_t rng_state = 0x74696d65; /* "time" */

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9;
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb;
	return z ^ (z >> 31);
}

static void expect_parse(const char *s, size_t len, int64_t sec, long nsec)
{
	struct timespec t = { 0, 0 };
	int rc = time_parse_rfc3339(s, len, &t);

	if (rc != 0 || t.tv_sec != sec || t.tv_nsec != nsec)
		print_error("parsing \"%.*s\": got %s %lld.%09ld, want %lld.%09ld\n", (int)len, s,
		            err_name(rc), (long long)t.tv_sec, t.tv_nsec, (long long)sec, nsec);
	assert_int_equal(rc, 0);
	assert_int_equal(t.tv_sec, sec);
	assert_int_equal(t.tv_nsec, nsec);
}

static void expect_parse_error(const char *s, size_t len, int want)
{
	struct timespec t = { 42, 43 };
	int rc = time_parse_rfc3339(s, len, &t);

	if (rc != want)
		print_error("parsing \"%.*s\": got %s, want %s\n", (int)len, s, err_name(rc),
		            err_name(want));
	assert_int_equal(rc, want);
	/* The output is left alone on failure. */
	assert_int_equal(t.tv_sec, 42);
	assert_int_equal(t.tv_nsec, 43);
}

#define PARSE_OK(s, sec, nsec) expect_parse(s, sizeof(s) - 1, sec, nsec)
#define PARSE_ERR(s, want)     expect_parse_error(s, sizeof(s) - 1, want)

static void expect_format(int64_t sec, long nsec, bool millis, const char *want)
{
	struct timespec t = { (time_t)sec, nsec };
	char buf[TIME_RFC3339_MAX];

	assert_int_equal(time_format_rfc3339(&t, millis, buf, sizeof(buf)), (int)strlen(want));
	assert_string_equal(buf, want);
}

static void test_format_rfc3339(void **state)
{
	(void)state;
	expect_format(0, 0, false, "1970-01-01T00:00:00Z");
	expect_format(0, 0, true, "1970-01-01T00:00:00.000Z");
	expect_format(1767366245, 123456789, false, "2026-01-02T15:04:05Z");
	expect_format(1767366245, 123456789, true, "2026-01-02T15:04:05.123Z");
	/* Truncated, not rounded: .9999 stays in its second. */
	expect_format(1767366245, 999999999, true, "2026-01-02T15:04:05.999Z");
	expect_format(1767366245, 999999, true, "2026-01-02T15:04:05.000Z");
	expect_format(-1, 0, false, "1969-12-31T23:59:59Z");
	expect_format(-1, 500000000, true, "1969-12-31T23:59:59.500Z");
	expect_format(1709208000, 0, false, "2024-02-29T12:00:00Z");
	expect_format(951782400, 0, false, "2000-02-29T00:00:00Z");
	expect_format(4107542400, 0, false, "2100-03-01T00:00:00Z");
	expect_format(-62167219200, 0, false, "0000-01-01T00:00:00Z");
	expect_format(253402300799, 999000000, true, "9999-12-31T23:59:59.999Z");
}

static void test_format_rfc3339_errors(void **state)
{
	struct timespec t = { 0, 0 };
	char buf[TIME_RFC3339_MAX];

	(void)state;
	/* Years that need more or fewer than four digits. */
	t.tv_sec = -62167219201;
	assert_int_equal(time_format_rfc3339(&t, false, buf, sizeof(buf)), ERR_TIME_RANGE);
	t.tv_sec = 253402300800;
	assert_int_equal(time_format_rfc3339(&t, false, buf, sizeof(buf)), ERR_TIME_RANGE);
	t.tv_sec = 0;
	t.tv_nsec = 1000000000;
	assert_int_equal(time_format_rfc3339(&t, false, buf, sizeof(buf)), ERR_TIME_RANGE);
	t.tv_nsec = -1;
	assert_int_equal(time_format_rfc3339(&t, true, buf, sizeof(buf)), ERR_TIME_RANGE);
	assert_string_equal(buf, "");
	/* 20 characters and a NUL fit in 21 bytes, not in 20. */
	t.tv_nsec = 0;
	assert_int_equal(time_format_rfc3339(&t, false, buf, 21), 20);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	assert_int_equal(time_format_rfc3339(&t, false, buf, 20), ERR_TRUNCATED);
	assert_string_equal(buf, "");
	assert_int_equal(time_format_rfc3339(&t, true, buf, 25), 24);
	assert_int_equal(time_format_rfc3339(&t, true, buf, 24), ERR_TRUNCATED);
	assert_int_equal(time_format_rfc3339(&t, true, NULL, 0), ERR_TRUNCATED);
}

/* Our calendar against glibc's gmtime_r, every day of every year from 0000 to 9999. */
static void test_format_against_gmtime(void **state)
{
	char buf[TIME_RFC3339_MAX], want[64];
	struct timespec t = { 0, 0 }, back;
	struct tm tm;

	(void)state;
	for (int64_t sec = -62167219200; sec <= 253402300799; sec += 86400) {
		/* A different time of day each day. */
		t.tv_sec = (time_t)(sec + (int64_t)(rng() % 86400));
		t.tv_nsec = (long)(rng() % 1000000000);
		assert_non_null(gmtime_r(&t.tv_sec, &tm));
		snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ",
		         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
		         tm.tm_sec, t.tv_nsec / 1000000);
		assert_int_equal(time_format_rfc3339(&t, true, buf, sizeof(buf)), 24);
		if (strcmp(buf, want) != 0)
			print_error("at %lld\n", (long long)t.tv_sec);
		assert_string_equal(buf, want);
		assert_int_equal(time_parse_rfc3339(buf, 24, &back), 0);
		assert_int_equal(back.tv_sec, t.tv_sec);
		assert_int_equal(back.tv_nsec, t.tv_nsec / 1000000 * 1000000);
	}
}

/* The examples of RFC 3339 section 5.8. */
static void test_parse_rfc3339_examples(void **state)
{
	(void)state;
	PARSE_OK("1985-04-12T23:20:50.52Z", 482196050, 520000000);
	PARSE_OK("1996-12-19T16:39:57-08:00", 851042397, 0);
	/* The leap second, in UTC and at -08:00, repeats 23:59:59. */
	PARSE_OK("1990-12-31T23:59:60Z", 662687999, 0);
	PARSE_OK("1990-12-31T15:59:60-08:00", 662687999, 0);
	PARSE_OK("1937-01-01T12:00:27.87+00:20", -1041337173, 870000000);
}

static void test_parse_rfc3339_valid(void **state)
{
	(void)state;
	PARSE_OK("1970-01-01T00:00:00Z", 0, 0);
	PARSE_OK("2026-01-02T15:04:05Z", 1767366245, 0);
	PARSE_OK("2026-01-02t15:04:05z", 1767366245, 0);
	PARSE_OK("2026-01-02T15:04:05z", 1767366245, 0);
	PARSE_OK("2026-01-02t15:04:05Z", 1767366245, 0);
	PARSE_OK("2026-01-02T15:04:05.123Z", 1767366245, 123000000);
	PARSE_OK("2026-01-02T15:04:05.000000001Z", 1767366245, 1);
	PARSE_OK("2026-01-02T15:04:05.999999999Z", 1767366245, 999999999);
	/* Digits after the ninth are checked and dropped, never rounded. */
	PARSE_OK("2026-01-02T15:04:05.1234567899Z", 1767366245, 123456789);
	PARSE_OK("2026-01-02T15:04:05.99999999999999999999999999Z", 1767366245, 999999999);
	PARSE_OK("2026-01-02T15:04:05.0Z", 1767366245, 0);
	/* Offsets are applied. */
	PARSE_OK("2026-01-02T15:04:05+00:00", 1767366245, 0);
	PARSE_OK("2026-01-02T15:04:05-00:00", 1767366245, 0);
	PARSE_OK("2026-01-02T20:34:05+05:30", 1767366245, 0);
	PARSE_OK("2026-01-02T20:34:05.5+05:30", 1767366245, 500000000);
	PARSE_OK("2026-01-01T23:04:05-16:00", 1767366245, 0);
	PARSE_OK("2026-01-03T15:03:05+23:59", 1767366245, 0);
	PARSE_OK("2026-01-01T15:05:05-23:59", 1767366245, 0);
	/* Leap days. */
	PARSE_OK("2024-02-29T12:00:00Z", 1709208000, 0);
	PARSE_OK("2000-02-29T00:00:00Z", 951782400, 0);
	PARSE_OK("2023-02-28T00:00:00Z", 1677542400, 0);
	/* Last days of months, and the limits of four-digit years (beyond, through offsets). */
	PARSE_OK("2026-04-30T00:00:00Z", 1777507200, 0);
	PARSE_OK("2026-12-31T23:59:59Z", 1798761599, 0);
	PARSE_OK("0000-01-01T00:00:00Z", -62167219200, 0);
	PARSE_OK("9999-12-31T23:59:59Z", 253402300799, 0);
	PARSE_OK("0000-01-01T00:00:00+01:00", -62167222800, 0);
	PARSE_OK("9999-12-31T23:59:59-01:00", 253402304399, 0);
	/* Leap seconds: at the end of June (2016 had one at the end of December). */
	PARSE_OK("2015-06-30T23:59:60Z", 1435708799, 0);
	PARSE_OK("2016-12-31T23:59:60.999Z", 1483228799, 999000000);
	PARSE_OK("2017-01-01T05:29:60+05:30", 1483228799, 0);
	PARSE_OK("2017-01-01T00:59:60+01:00", 1483228799, 0);
	PARSE_OK("2016-12-31T22:59:60-01:00", 1483228799, 0);
	/* Not a month with a leap second in fact, but allowed: they cannot be predicted. */
	PARSE_OK("2026-02-28T23:59:60Z", 1772323199, 0);
}

static void test_parse_rfc3339_range(void **state)
{
	(void)state;
	PARSE_ERR("2023-02-29T00:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2100-02-29T00:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("1900-02-29T00:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2024-02-30T00:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-04-31T00:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-06-31T00:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-01-32T00:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-01-00T00:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-13-01T00:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-00-01T00:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-99-99T99:99:99Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-01-02T24:00:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-01-02T15:60:00Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-01-02T15:04:61Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-01-02T15:04:99Z", ERR_TIME_RANGE);
	PARSE_ERR("2026-01-02T15:04:05+24:00", ERR_TIME_RANGE);
	PARSE_ERR("2026-01-02T15:04:05-24:00", ERR_TIME_RANGE);
	PARSE_ERR("2026-01-02T15:04:05+00:60", ERR_TIME_RANGE);
	PARSE_ERR("2026-01-02T15:04:05+99:99", ERR_TIME_RANGE);
	/* Second 60 anywhere but 23:59:60 UTC on the last day of a month. */
	PARSE_ERR("2026-01-02T15:04:60Z", ERR_TIME_RANGE);
	PARSE_ERR("2016-12-30T23:59:60Z", ERR_TIME_RANGE);
	PARSE_ERR("2016-12-31T23:58:60Z", ERR_TIME_RANGE);
	PARSE_ERR("2016-12-31T23:59:60+01:00", ERR_TIME_RANGE);
	PARSE_ERR("2016-12-31T22:59:60+01:00", ERR_TIME_RANGE);
	PARSE_ERR("2017-01-01T00:59:60-01:00", ERR_TIME_RANGE);
	PARSE_ERR("2026-02-27T23:59:60Z", ERR_TIME_RANGE);
}

static void test_parse_rfc3339_syntax(void **state)
{
	static const char *const bad[] = {
		"",
		"2026",
		"2026-01-02",
		"2026-01-02T15:04:05",  /* no offset */
		"2026-01-02T15:04Z",    /* no seconds */
		"2026-01-02 15:04:05Z", /* space for 'T' */
		"2026-01-02_15:04:05Z",
		"2026-01-0215:04:05Z",   /* no 'T' */
		"20260102T150405Z",      /* ISO 8601 basic format */
		"26-01-02T15:04:05Z",    /* two-digit year */
		"02026-01-02T15:04:05Z", /* five-digit year */
		"+2026-01-02T15:04:05Z",
		"-2026-01-02T15:04:05Z",
		"2026-1-02T15:04:05Z", /* one-digit month */
		"2026-01-2T15:04:05Z",
		"2026-01-02T5:04:05Z",
		"2026-01-02T15:4:05Z",
		"2026-01-02T15:04:5Z",
		"2026/01/02T15:04:05Z",
		"2026-01-02T15.04.05Z",
		"2026-01-02T15:04:05.Z",  /* a '.' needs a digit */
		"2026-01-02T15:04:05,5Z", /* ISO 8601 comma */
		"2026-01-02T15:04:05.5.5Z",
		"2026-01-02T15:04:05ZZ",
		"2026-01-02T15:04:05Zx", /* trailing garbage */
		"2026-01-02T15:04:05Z ",
		" 2026-01-02T15:04:05Z",
		"2026-01-02T15:04:05Z\n",
		"2026-01-02T15:04:05UTC",
		"2026-01-02T15:04:05GMT",
		"2026-01-02T15:04:05+0100", /* no colon */
		"2026-01-02T15:04:05+01",
		"2026-01-02T15:04:05+1:00",
		"2026-01-02T15:04:05+01:0",
		"2026-01-02T15:04:05+01:00Z",
		"2026-01-02T15:04:05+01:00:00",
		"2026-01-02T15:04:05 +01:00",
		"2026-01-02T15:04:05\u221201:00", /* U+2212 minus sign */
		"2026-01-02T15:04:05+01-00",
		"2026-01-02T15:04:05+",
		"2026-01-02T15:04:05-",
		"2026-0a-02T15:04:05Z",
		"2026-01-02T15:04:0xZ",
		"2026-01-02T15:04:05.5e3Z",
		"2026-01-02T15:04:05.\xd9\xa1Z", /* an Arabic-Indic digit */
		"\xef\xbc\x92\xef\xbc\x90\xef\xbc\x92\xef\xbc\x96-01-02T15:04:05Z", /* full-width */
		"Fri, 02 Jan 2026 15:04:05 GMT",
		"1767366245",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_parse_error(bad[i], strlen(bad[i]), ERR_TIME_SYNTAX);
	/* The length is given: a NUL inside is an error, and what follows len is not read. */
	PARSE_ERR("2026-01-02T15:04:05Z\0", ERR_TIME_SYNTAX);
	PARSE_ERR("2026-01-02T15:04:05\0Z", ERR_TIME_SYNTAX);
	PARSE_ERR("2026-01-02T15:04:05.1\0002Z", ERR_TIME_SYNTAX);
	PARSE_ERR("2026-01-02\0T15:04:05Z", ERR_TIME_SYNTAX);
	expect_parse("2026-01-02T15:04:05Zgarbage", 20, 1767366245, 0);
	expect_parse_error("2026-01-02T15:04:05Z", 19, ERR_TIME_SYNTAX);
	expect_parse_error("2026-01-02T15:04:05+01:00", 24, ERR_TIME_SYNTAX);
	expect_parse_error(NULL, 0, ERR_TIME_SYNTAX);
	/* Shape is checked before range: a month 13 with no offset is a syntax error. */
	PARSE_ERR("2026-13-02T15:04:05", ERR_TIME_SYNTAX);
	PARSE_ERR("2026-13-02T15:04:05+01:00x", ERR_TIME_SYNTAX);
}

/* Formatting then parsing gives the same instant, to the millisecond or the second. */
static void test_rfc3339_round_trip(void **state)
{
	struct timespec t, back;
	char buf[TIME_RFC3339_MAX];
	int len;

	(void)state;
	for (int i = 0; i < 100000; i++) {
		t.tv_sec = (time_t)(-62167219200 + (int64_t)(rng() % (253402300800 + 62167219200)));
		t.tv_nsec = (long)(rng() % 1000000000);
		len = time_format_rfc3339(&t, i % 2 == 0, buf, sizeof(buf));
		assert_int_equal(len, i % 2 == 0 ? 24 : 20);
		assert_int_equal(time_parse_rfc3339(buf, (size_t)len, &back), 0);
		assert_int_equal(back.tv_sec, t.tv_sec);
		assert_int_equal(back.tv_nsec, i % 2 == 0 ? t.tv_nsec / 1000000 * 1000000 : 0);
	}
}

/* Under a TZ far from UTC, with or without the tz database, nothing changes. */
static void test_rfc3339_ignores_tz(void **state)
{
	static const char *const zones[] = { "Asia/Kolkata", "IST-5:30", "America/St_Johns" };
	struct timespec t = { 1767366245, 0 }, back;
	char *saved = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	char buf[TIME_RFC3339_MAX];
	struct tm tm;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(zones); i++) {
		assert_int_equal(setenv("TZ", zones[i], 1), 0);
		tzset();
		if (strcmp(zones[i], "IST-5:30") == 0) {
			/* Proof that TZ is in force (the POSIX form needs no tz database). */
			assert_non_null(localtime_r(&t.tv_sec, &tm));
			assert_int_equal(tm.tm_gmtoff, 19800);
			assert_int_equal(tm.tm_hour, 20);
		}
		assert_int_equal(time_format_rfc3339(&t, false, buf, sizeof(buf)), 20);
		assert_string_equal(buf, "2026-01-02T15:04:05Z");
		PARSE_OK("2026-01-02T15:04:05Z", 1767366245, 0);
		PARSE_OK("2026-01-02T20:34:05+05:30", 1767366245, 0);
		PARSE_OK("1990-12-31T23:59:60Z", 662687999, 0);
		PARSE_OK("2024-02-29T12:00:00Z", 1709208000, 0);
		assert_int_equal(time_parse_rfc3339(buf, 20, &back), 0);
		assert_int_equal(back.tv_sec, t.tv_sec);
	}
	if (saved != NULL) {
		setenv("TZ", saved, 1);
		free(saved);
	} else {
		unsetenv("TZ");
	}
	tzset();
}

static void expect_duration(const char *s, size_t len, int64_t want)
{
	int64_t ms = -12345;
	int rc = time_parse_duration(s, len, &ms);

	if (rc != 0 || ms != want)
		print_error("parsing \"%.*s\": got %s %lld, want %lld\n", (int)len, s, err_name(rc),
		            (long long)ms, (long long)want);
	assert_int_equal(rc, 0);
	assert_int_equal(ms, want);
}

static void expect_duration_error(const char *s, size_t len, int want)
{
	int64_t ms = -12345;
	int rc = time_parse_duration(s, len, &ms);

	if (rc != want)
		print_error("parsing \"%.*s\": got %s, want %s\n", (int)len, s, err_name(rc),
		            err_name(want));
	assert_int_equal(rc, want);
	assert_int_equal(ms, -12345);
}

#define DUR_OK(s, want)  expect_duration(s, sizeof(s) - 1, want)
#define DUR_ERR(s, want) expect_duration_error(s, sizeof(s) - 1, want)

static void test_parse_duration(void **state)
{
	(void)state;
	DUR_OK("0", 0);
	DUR_OK("0s", 0);
	DUR_OK("0ms", 0);
	DUR_OK("0h0m0s", 0);
	DUR_OK("1ms", 1);
	DUR_OK("500ms", 500);
	DUR_OK("1s", 1000);
	DUR_OK("90s", 90000);
	DUR_OK("15m", 900000);
	DUR_OK("1h", 3600000);
	DUR_OK("1h30m", 5400000);
	DUR_OK("1h2m3s4ms", 3723004);
	DUR_OK("87600h", 315360000000);
	DUR_OK("8760h", 31536000000);
	DUR_OK("000001s", 1000);
	/* Fractions, as in Go. */
	DUR_OK("1.5h", 5400000);
	DUR_OK("1.5s", 1500);
	DUR_OK("2.25m", 135000);
	DUR_OK(".5s", 500);
	DUR_OK("1.s", 1000);
	DUR_OK("0.001s", 1);
	DUR_OK("0.1m", 6000);
	DUR_OK("0.0000002777777778h", 1);
	DUR_OK("0.000000277777777778h", 1);
	/* Fraction digits after the 18th are ignored (this is 1.00000000000000000000000008ms). */
	DUR_OK("0.00000027777777777777777777777777777778h", 0);
	DUR_OK("1.999999999999999999999999h", 7199999);
	/* Finer than a millisecond is truncated. */
	DUR_OK("1.0005s", 1000);
	DUR_OK("0.5ms", 0);
	DUR_OK("1.9ms", 1);
	/* Units may repeat and come in any order, as in Go. */
	DUR_OK("1h1h", 7200000);
	DUR_OK("30m1h", 5400000);
	DUR_OK("1s1ms1m", 61001);
	/* The largest: INT64_MAX milliseconds, written three ways. */
	DUR_OK("9223372036854775807ms", INT64_MAX);
	DUR_OK("9223372036854775.807s", INT64_MAX);
	DUR_OK("2562047788015h12m55.807s", INT64_MAX);
	DUR_OK("2562047788015h12m55.8079999s", INT64_MAX);
	DUR_OK("9223372036854775807ms0s", INT64_MAX);
	/* The length is given: what follows is not read. */
	expect_duration("90sxyz", 3, 90000);
	expect_duration("1h30", 2, 3600000);
}

static void test_parse_duration_range(void **state)
{
	(void)state;
	DUR_ERR("9223372036854775808ms", ERR_DURATION_RANGE);
	DUR_ERR("9223372036854775.808s", ERR_DURATION_RANGE);
	DUR_ERR("2562047788015h12m55.808s", ERR_DURATION_RANGE);
	DUR_ERR("2562047788016h", ERR_DURATION_RANGE);
	DUR_ERR("9223372036854775807ms1ms", ERR_DURATION_RANGE);
	DUR_ERR("1ms9223372036854775807ms", ERR_DURATION_RANGE);
	DUR_ERR("18446744073709551615ms", ERR_DURATION_RANGE);
	DUR_ERR("18446744073709551616ms", ERR_DURATION_RANGE);
	DUR_ERR("99999999999999999999999999999999h", ERR_DURATION_RANGE);
	DUR_ERR("99999999999999999999999999999999h1s", ERR_DURATION_RANGE);
	DUR_ERR("5124095576030431h5124095576030431h", ERR_DURATION_RANGE);
	/* Malformed beats too large. */
	DUR_ERR("99999999999999999999999999999999x", ERR_DURATION_SYNTAX);
	DUR_ERR("99999999999999999999999999999999h-", ERR_DURATION_SYNTAX);
}

static void test_parse_duration_syntax(void **state)
{
	static const char *const bad[] = {
		"",       "h",    "1",    "1x",   "-1s",   "+1s",    "-0",     "+0",     "1h-",
		"1..5s",  " 1s",  "1s ",  "1 s",  "1S",    "1H",     "1Ms",    "1MS",    "1ns",
		"1us",    "1µs",  "1μs",  "1d",   "1w",    "1y",     "1h30",   ".s",     ".",
		"s1",     "1.5",  "00",   "01",   "0.0",   "1e3s",   "0x10s",  "1,5s",   "ms",
		"1mss",   "1hm",  "1sec", "1min", "1hour", "1h 30m", "1h,30m", "1h+30m", "1_000s",
		"1'000s", "٣s",   "１s",  "1s\n", "\t1s",  "s",      "m",      "0.",     "1.5.5s",
		"1h.",    "1h.s", "NaNs", "infh", "--1s",  "1-s",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		expect_duration_error(bad[i], strlen(bad[i]), ERR_DURATION_SYNTAX);
	DUR_ERR("1s\0", ERR_DURATION_SYNTAX);
	DUR_ERR("1\0s", ERR_DURATION_SYNTAX);
	DUR_ERR("\0", ERR_DURATION_SYNTAX);
	expect_duration_error(NULL, 0, ERR_DURATION_SYNTAX);
	expect_duration_error("1s", 1, ERR_DURATION_SYNTAX);
	expect_duration_error("1.5s", 3, ERR_DURATION_SYNTAX);
}

static void test_format_duration(void **state)
{
	static const struct {
		int64_t ms;
		const char *text;
	} cases[] = {
		{ 0, "0s" },
		{ 1, "1ms" },
		{ 500, "500ms" },
		{ 999, "999ms" },
		{ 1000, "1s" },
		{ 1001, "1.001s" },
		{ 1050, "1.05s" },
		{ 1500, "1.5s" },
		{ 59999, "59.999s" },
		{ 60000, "1m" },
		{ 90000, "1m30s" },
		{ 90500, "1m30.5s" },
		{ 900000, "15m" },
		{ 3600000, "1h" },
		{ 3600500, "1h0.5s" },
		{ 3601000, "1h1s" },
		{ 3723004, "1h2m3.004s" },
		{ 5400000, "1h30m" },
		{ 86400000, "24h" },
		{ 315360000000, "87600h" },
		{ INT64_MAX, "2562047788015h12m55.807s" },
		{ -1, "-1ms" },
		{ -1500, "-1.5s" },
		{ -5400000, "-1h30m" },
		{ INT64_MIN, "-2562047788015h12m55.808s" },
	};
	char buf[TIME_DURATION_MAX];

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		assert_int_equal(time_format_duration(cases[i].ms, buf, sizeof(buf)),
		                 (int)strlen(cases[i].text));
		assert_string_equal(buf, cases[i].text);
	}
	/* "1h30m" and a NUL fit in 6 bytes, not in 5. */
	assert_int_equal(time_format_duration(5400000, buf, 6), 5);
	assert_string_equal(buf, "1h30m");
	assert_int_equal(time_format_duration(5400000, buf, 5), ERR_TRUNCATED);
	assert_string_equal(buf, "");
	assert_int_equal(time_format_duration(0, NULL, 0), ERR_TRUNCATED);
	assert_int_equal(time_format_duration(INT64_MIN, buf, TIME_DURATION_MAX), 25);
}

/* Whatever is formatted parses back to the same number of milliseconds. */
static void test_duration_round_trip(void **state)
{
	char buf[TIME_DURATION_MAX];
	int64_t ms, back;
	int len;

	(void)state;
	for (int i = 0; i < 200000; i++) {
		switch (i % 4) {
		case 0:
			ms = (int64_t)(rng() >> 1);
			break;
		case 1:
			ms = (int64_t)(rng() % 100000000000);
			break;
		case 2:
			ms = (int64_t)(rng() % 10000000);
			break;
		default:
			ms = i;
			break;
		}
		len = time_format_duration(ms, buf, sizeof(buf));
		assert_true(len > 0);
		back = -1;
		assert_int_equal(time_parse_duration(buf, (size_t)len, &back), 0);
		if (back != ms)
			print_error("%lld -> \"%s\" -> %lld\n", (long long)ms, buf,
			            (long long)back);
		assert_int_equal(back, ms);
	}
}

static void test_clocks(void **state)
{
	struct timespec ts;
	int64_t now, mono1, mono2;

	(void)state;
	clock_gettime(CLOCK_REALTIME, &ts);
	now = time_now_ms();
	assert_true(now >= (int64_t)ts.tv_sec * 1000);
	assert_true(now - (int64_t)ts.tv_sec * 1000 < 5000);
	mono1 = time_mono_ms();
	ts.tv_sec = 0;
	ts.tv_nsec = 20000000;
	nanosleep(&ts, NULL);
	mono2 = time_mono_ms();
	assert_true(mono2 - mono1 >= 20);
	assert_true(mono2 - mono1 < 5000);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_format_rfc3339),
		cmocka_unit_test(test_format_rfc3339_errors),
		cmocka_unit_test(test_format_against_gmtime),
		cmocka_unit_test(test_parse_rfc3339_examples),
		cmocka_unit_test(test_parse_rfc3339_valid),
		cmocka_unit_test(test_parse_rfc3339_range),
		cmocka_unit_test(test_parse_rfc3339_syntax),
		cmocka_unit_test(test_rfc3339_round_trip),
		cmocka_unit_test(test_rfc3339_ignores_tz),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_duration_range),
		cmocka_unit_test(test_parse_duration_syntax),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_duration_round_trip),
		cmocka_unit_test(test_clocks),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
