/* SPDX-License-Identifier: Apache-2.0 */
/* RFC 3339 date-times and Go-style durations, parsed and formatted in UTC, and clocks. */
#include <stdint.h>
#include <string.h>
#include <time.h>

#include "meshlet/err.h"
#include "meshlet/time.h"

#define SECS_PER_DAY 86400
/* 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of four-digit years. */
#define RFC3339_MIN_SEC (-62167219200LL)
#define RFC3339_MAX_SEC 253402300799LL

/*
 * Calendar arithmetic on the proleptic Gregorian calendar, from the well-known
 * era-of-400-years method (H. Hinnant, "chrono-Compatible Low-Level Date Algorithms"):
 * no timegm, no gmtime, so neither TZ nor the range of struct tm can get in the way.
 * March is taken as the first month of the year, so that the leap day comes last.
 */
static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b < 0);
}

static bool is_leap(int64_t y)
{
	return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
}

static unsigned int days_in_month(int64_t y, unsigned int m)
{
	static const unsigned char days[12] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	return m == 2 && is_leap(y) ? 29 : days[m - 1];
}

/* Days from 1970-01-01 to y-m-d (m 1-12, d 1-31). */
static int64_t days_from_civil(int64_t y, unsigned int m, unsigned int d)
{
	int64_t era;
	unsigned int yoe, doy, doe;

	y -= m <= 2;
	era = floor_div(y, 400);
	yoe = (unsigned int)(y - era * 400);
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int64_t time_from_utc_tm(const struct tm *tm)
{
	return days_from_civil((int64_t)tm->tm_year + 1900, (unsigned int)tm->tm_mon + 1,
	                       (unsigned int)tm->tm_mday) *
	           SECS_PER_DAY +
	       (int64_t)tm->tm_hour * 3600 + tm->tm_min * 60 + tm->tm_sec;
}

/* The date that is z days after 1970-01-01. */
static void civil_from_days(int64_t z, int64_t *y, unsigned int *m, unsigned int *d)
{
	int64_t era;
	unsigned int doe, yoe, doy, mp;

	z += 719468;
	era = floor_div(z, 146097);
	doe = (unsigned int)(z - era * 146097);
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*m = mp < 10 ? mp + 3 : mp - 9;
	*y = era * 400 + yoe + (*m <= 2);
}

/* Writes v as exactly n decimal digits, zero-padded; returns the end. */
static char *put_fixed(char *p, unsigned int v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		p[i] = (char)('0' + v % 10);
		v /= 10;
	}
	return p + n;
}

/* Writes v in decimal, without padding; returns the end. */
static char *put_u64(char *p, uint64_t v)
{
	char digits[20];
	int n = 0;

	do {
		digits[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v != 0);
	while (n > 0)
		*p++ = digits[--n];
	return p;
}

/* Copies the len bytes in tmp and a NUL to buf, if they fit. */
static int emit(const char *tmp, size_t len, char *buf, size_t size)
{
	if (len >= size) {
		if (size > 0)
			buf[0] = '\0';
		return ERR_TRUNCATED;
	}
	memcpy(buf, tmp, len);
	buf[len] = '\0';
	return (int)len;
}

int time_format_rfc3339(const struct timespec *t, bool millis, char *buf, size_t size)
{
	char tmp[TIME_RFC3339_MAX], *p = tmp;
	int64_t sec = t->tv_sec, days, y;
	unsigned int m, d, tod;

	if (sec < RFC3339_MIN_SEC || sec > RFC3339_MAX_SEC || t->tv_nsec < 0 ||
	    t->tv_nsec >= 1000000000) {
		if (size > 0)
			buf[0] = '\0';
		return ERR_TIME_RANGE;
	}
	days = floor_div(sec, SECS_PER_DAY);
	tod = (unsigned int)(sec - days * SECS_PER_DAY);
	civil_from_days(days, &y, &m, &d);
	p = put_fixed(p, (unsigned int)y, 4);
	*p++ = '-';
	p = put_fixed(p, m, 2);
	*p++ = '-';
	p = put_fixed(p, d, 2);
	*p++ = 'T';
	p = put_fixed(p, tod / 3600, 2);
	*p++ = ':';
	p = put_fixed(p, tod / 60 % 60, 2);
	*p++ = ':';
	p = put_fixed(p, tod % 60, 2);
	if (millis) {
		*p++ = '.';
		p = put_fixed(p, (unsigned int)(t->tv_nsec / 1000000), 3);
	}
	*p++ = 'Z';
	return emit(tmp, (size_t)(p - tmp), buf, size);
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* The value of the n digits at s, or -1 if one of them is not a digit. */
static int fixed_digits(const char *s, size_t n)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (!is_digit(s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int time_parse_rfc3339(const char *s, size_t len, struct timespec *out)
{
	int year, mon, day, hour, min, sec, off_h = 0, off_m = 0, sign = 0;
	long nsec = 0, scale = 100000000;
	size_t i, start;
	int64_t t, y;
	unsigned int m, d;

	/* "2026-01-02T15:04:05Z" is the shortest there is. */
	if (s == NULL || len < 20)
		return ERR_TIME_SYNTAX;
	year = fixed_digits(s, 4);
	mon = fixed_digits(s + 5, 2);
	day = fixed_digits(s + 8, 2);
	hour = fixed_digits(s + 11, 2);
	min = fixed_digits(s + 14, 2);
	sec = fixed_digits(s + 17, 2);
	if (year < 0 || s[4] != '-' || mon < 0 || s[7] != '-' || day < 0 ||
	    (s[10] != 'T' && s[10] != 't') || hour < 0 || s[13] != ':' || min < 0 || s[16] != ':' ||
	    sec < 0)
		return ERR_TIME_SYNTAX;
	i = 19;
	if (s[i] == '.') {
		start = ++i;
		for (; i < len && is_digit(s[i]); i++) {
			nsec += (s[i] - '0') * scale;
			scale /= 10;
		}
		if (i == start)
			return ERR_TIME_SYNTAX;
	}
	if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
		i++;
	} else if (i < len && (s[i] == '+' || s[i] == '-')) {
		if (len - i < 6)
			return ERR_TIME_SYNTAX;
		sign = s[i] == '+' ? 1 : -1;
		off_h = fixed_digits(s + i + 1, 2);
		off_m = fixed_digits(s + i + 4, 2);
		if (off_h < 0 || s[i + 3] != ':' || off_m < 0)
			return ERR_TIME_SYNTAX;
		i += 6;
	} else {
		return ERR_TIME_SYNTAX;
	}
	if (i != len)
		return ERR_TIME_SYNTAX;

	if (mon < 1 || mon > 12 || day < 1 || (unsigned int)day > days_in_month(year, mon) ||
	    hour > 23 || min > 59 || sec > 60 || off_h > 23 || off_m > 59)
		return ERR_TIME_RANGE;
	t = days_from_civil(year, mon, day) * SECS_PER_DAY + hour * 3600 + min * 60 + sec -
	    sign * (off_h * 3600 + off_m * 60);
	if (sec == 60) {
		/* A leap second ends a UTC day, so t is then the next midnight UTC. */
		if (t % SECS_PER_DAY != 0)
			return ERR_TIME_RANGE;
		t--;
		civil_from_days(floor_div(t, SECS_PER_DAY), &y, &m, &d);
		if (d != days_in_month(y, m))
			return ERR_TIME_RANGE;
	}
	out->tv_sec = (time_t)t;
	out->tv_nsec = nsec;
	return 0;
}

/*
 * floor(frac / scale * unit) exactly, for frac < scale = 10^k with k <= 18 and unit at
 * most an hour in milliseconds. frac * unit may not fit in 64 bits, so frac is split
 * into its high and low nine digits: floor((hi*u + lo*u/1e9) / (scale/1e9)) equals
 * floor((hi*u + floor(lo*u/1e9)) / (scale/1e9)).
 */
static uint64_t frac_ms(uint64_t frac, uint64_t scale, uint64_t unit)
{
	const uint64_t e9 = 1000000000;

	if (scale <= e9)
		return frac * unit / scale;
	return (frac / e9 * unit + frac % e9 * unit / e9) / (scale / e9);
}

int time_parse_duration(const char *s, size_t len, int64_t *ms)
{
	static const struct {
		char name[3];
		uint64_t ms;
	} units[] = {
		{ "ms", 1 },
		{ "s", 1000 },
		{ "m", 60 * 1000 },
		{ "h", 60 * 60 * 1000 },
	};
	const uint64_t max = INT64_MAX, frac_max = 1000000000000000000;
	uint64_t total = 0, whole, frac, scale, unit, part, digit;
	size_t i = 0, ndigits, ustart, u;
	bool overflow = false;

	if (s == NULL || len == 0)
		return ERR_DURATION_SYNTAX;
	if (len == 1 && s[0] == '0') {
		*ms = 0;
		return 0;
	}
	/* Overflow is only noted on the way, so that a malformed string is a syntax error. */
	while (i < len) {
		whole = 0;
		frac = 0;
		scale = 1;
		ndigits = 0;
		for (; i < len && is_digit(s[i]); i++, ndigits++) {
			digit = (uint64_t)(s[i] - '0');
			if (whole > (max - digit) / 10)
				overflow = true;
			else
				whole = whole * 10 + digit;
		}
		if (i < len && s[i] == '.') {
			for (i++; i < len && is_digit(s[i]); i++, ndigits++) {
				if (scale < frac_max) {
					frac = frac * 10 + (uint64_t)(s[i] - '0');
					scale *= 10;
				}
			}
		}
		if (ndigits == 0)
			return ERR_DURATION_SYNTAX;
		for (ustart = i; i < len && s[i] >= 'a' && s[i] <= 'z'; i++)
			;
		for (u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
			if (i - ustart == strlen(units[u].name) &&
			    memcmp(s + ustart, units[u].name, i - ustart) == 0)
				break;
		}
		if (u == sizeof(units) / sizeof(units[0]))
			return ERR_DURATION_SYNTAX;
		unit = units[u].ms;
		if (overflow || whole > max / unit) {
			overflow = true;
			continue;
		}
		/* Below 2^63 plus less than an hour: no wrap-around in 64 bits. */
		part = whole * unit + frac_ms(frac, scale, unit);
		if (part > max - total)
			overflow = true;
		else
			total += part;
	}
	if (overflow)
		return ERR_DURATION_RANGE;
	*ms = (int64_t)total;
	return 0;
}

int time_format_duration(int64_t ms, char *buf, size_t size)
{
	char tmp[TIME_DURATION_MAX], *p = tmp;
	/* Through unsigned, so that INT64_MIN has a magnitude too. */
	uint64_t u = ms < 0 ? -(uint64_t)ms : (uint64_t)ms;
	uint64_t h = u / 3600000, m = u / 60000 % 60, s = u / 1000 % 60, frac = u % 1000;
	int ndig = 3;

	if (ms < 0)
		*p++ = '-';
	if (u == 0) {
		memcpy(p, "0s", 2);
		p += 2;
	} else if (u < 1000) {
		p = put_u64(p, u);
		memcpy(p, "ms", 2);
		p += 2;
	} else {
		if (h != 0) {
			p = put_u64(p, h);
			*p++ = 'h';
		}
		if (m != 0) {
			p = put_u64(p, m);
			*p++ = 'm';
		}
		if (s != 0 || frac != 0) {
			p = put_u64(p, s);
			if (frac != 0) {
				while (frac % 10 == 0) {
					frac /= 10;
					ndig--;
				}
				*p++ = '.';
				p = put_fixed(p, (unsigned int)frac, ndig);
			}
			*p++ = 's';
		}
	}
	return emit(tmp, (size_t)(p - tmp), buf, size);
}

static int64_t clock_ms(clockid_t id)
{
	struct timespec ts;

	/* Cannot fail for the two clocks used here, which every Linux has. */
	clock_gettime(id, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t time_now_ms(void)
{
	return clock_ms(CLOCK_REALTIME);
}

int64_t time_mono_ms(void)
{
	return clock_ms(CLOCK_MONOTONIC);
}
