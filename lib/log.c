/* SPDX-License-Identifier: Apache-2.0 */
/* Structured logging to one file descriptor, one line per write(2). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "meshlet/err.h"
#include "meshlet/log.h"
#include "meshlet/time.h"

/* A line longer than this is cut short and marked "truncated". */
#define LOG_LINE_MAX 16384
/* Room kept free at the end of a line for the truncation mark and the closing brace. */
#define LOG_RESERVE 32

static struct {
	const char *prog;
	enum log_level level;
	bool json;
	int fd;
} log_state = { "meshlet", LOG_INFO, true, 2 };

const char *const log_level_names[] = { "debug", "info", "warn", "error", NULL };
const char *const log_format_names[] = { "auto", "json", "text", NULL };
static const char *const log_level_text[] = { "DEBUG", "INFO ", "WARN ", "ERROR" };

void log_init(const char *prog, enum log_level level, enum log_format format, int fd)
{
	log_state.prog = prog;
	log_state.level = level;
	log_state.fd = fd;
	if (format == LOG_FORMAT_AUTO)
		log_state.json = !isatty(fd);
	else
		log_state.json = format == LOG_FORMAT_JSON;
}

bool log_enabled(enum log_level level)
{
	return level >= log_state.level;
}

static void log_put(char *buf, size_t size, size_t *pos, const char *s, size_t n)
{
	if (*pos + n >= size)
		n = *pos < size - 1 ? size - 1 - *pos : 0;
	memcpy(buf + *pos, s, n);
	*pos += n;
}

static void log_puts(char *buf, size_t size, size_t *pos, const char *s)
{
	log_put(buf, size, pos, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s, or 0 when the bytes there are not one. */
static size_t log_utf8_len(const unsigned char *s)
{
	unsigned c = s[0];
	size_t n;
	unsigned min;
	unsigned cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		min = 0x80;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		min = 0x800;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		min = 0x10000;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
	if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

void log_json_escape(char *buf, size_t size, size_t *pos, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];
	const char *out;
	size_t n;

	while (*p != '\0') {
		n = 1;
		out = esc;
		switch (*p) {
		case '"':
			out = "\\\"";
			break;
		case '\\':
			out = "\\\\";
			break;
		case '\n':
			out = "\\n";
			break;
		case '\r':
			out = "\\r";
			break;
		case '\t':
			out = "\\t";
			break;
		default:
			if (*p < 0x20 || *p == 0x7f) {
				snprintf(esc, sizeof(esc), "\\u%04x", *p);
			} else if (*p < 0x80) {
				esc[0] = (char)*p;
				esc[1] = '\0';
			} else if ((n = log_utf8_len(p)) != 0) {
				memcpy(esc, p, n);
				esc[n] = '\0';
			} else {
				n = 1;
				out = "\\ufffd";
			}
		}
		/* Never cut an escape or a UTF-8 sequence in half. */
		if (*pos + strlen(out) >= size)
			return;
		log_puts(buf, size, pos, out);
		p += n;
	}
}

/* In text form, a value is quoted only when it needs to be. */
static void log_text_value(char *buf, size_t size, size_t *pos, const char *s)
{
	bool plain = *s != '\0';

	for (const char *p = s; *p != '\0' && plain; p++)
		plain = (unsigned char)*p > ' ' && *p != '"' && *p != '=' && *p != 0x7f;
	if (plain) {
		log_json_escape(buf, size, pos, s);
		return;
	}
	log_puts(buf, size, pos, "\"");
	log_json_escape(buf, size, pos, s);
	log_puts(buf, size, pos, "\"");
}

static void log_field(char *buf, size_t size, size_t *pos, const char *key, const char *val,
                      bool quote)
{
	if (log_state.json) {
		log_puts(buf, size, pos, ",\"");
		log_json_escape(buf, size, pos, key);
		log_puts(buf, size, pos, quote ? "\":\"" : "\":");
		log_json_escape(buf, size, pos, val);
		if (quote)
			log_puts(buf, size, pos, "\"");
	} else {
		log_puts(buf, size, pos, " ");
		log_json_escape(buf, size, pos, key);
		log_puts(buf, size, pos, "=");
		log_text_value(buf, size, pos, val);
	}
}

void log_write(enum log_level level, bool with_errno, const char *msg,
               const struct log_field *fields)
{
	int saved_errno = errno;
	char buf[LOG_LINE_MAX];
	size_t limit = sizeof(buf) - LOG_RESERVE;
	size_t pos = 0;
	size_t mark;
	bool truncated = false;
	char ts[40];
	char num[32];
	struct timespec now;
	ssize_t w;
	size_t off;

	if (level < log_state.level) {
		errno = saved_errno;
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	if (time_format_rfc3339(&now, true, ts, sizeof(ts)) < 0)
		snprintf(ts, sizeof(ts), "%lld", (long long)now.tv_sec);

	if (log_state.json) {
		log_puts(buf, limit, &pos, "{\"ts\":\"");
		log_puts(buf, limit, &pos, ts);
		log_puts(buf, limit, &pos, "\",\"level\":\"");
		log_puts(buf, limit, &pos, log_level_names[level]);
		log_puts(buf, limit, &pos, "\",\"msg\":\"");
		log_json_escape(buf, limit / 2, &pos, msg);
		log_puts(buf, limit, &pos, "\"");
	} else {
		log_puts(buf, limit, &pos, ts);
		log_puts(buf, limit, &pos, " ");
		log_puts(buf, limit, &pos, log_level_text[level]);
		log_puts(buf, limit, &pos, " ");
		log_json_escape(buf, limit / 2, &pos, msg);
	}
	for (const struct log_field *f = fields; f != NULL && f->type != LOG_FIELD_END; f++) {
		mark = pos;
		switch (f->type) {
		case LOG_FIELD_STR:
			/* A string that is not there leaves its field out. */
			if (f->s != NULL)
				log_field(buf, limit, &pos, f->key, f->s, true);
			break;
		case LOG_FIELD_INT:
			snprintf(num, sizeof(num), "%lld", f->i);
			log_field(buf, limit, &pos, f->key, num, false);
			break;
		case LOG_FIELD_BOOL:
			log_field(buf, limit, &pos, f->key, f->b ? "true" : "false", false);
			break;
		case LOG_FIELD_END:
			break;
		}
		/* A field that did not fit is dropped whole, so that the line stays valid. */
		if (pos >= limit - 1) {
			pos = mark;
			truncated = true;
			break;
		}
	}
	if (with_errno && !truncated)
		log_field(buf, limit, &pos, "error", err_str(-saved_errno), true);
	if (truncated)
		log_puts(buf, sizeof(buf), &pos,
		         log_state.json ? ",\"truncated\":true" : " truncated=true");
	log_puts(buf, sizeof(buf), &pos, log_state.json ? "}\n" : "\n");

	for (off = 0; off < pos; off += (size_t)w) {
		w = write(log_state.fd, buf + off, pos - off);
		if (w < 0 && errno == EINTR) {
			w = 0;
			continue;
		}
		if (w <= 0)
			break;
	}
	errno = saved_errno;
}

void log_exit_(int status)
{
	exit(status);
}
