/* SPDX-License-Identifier: Apache-2.0 */
/* Leveled, structured logging: one JSON object per line, or plain text on a terminal. */
#ifndef MESHLET_LOG_H
#define MESHLET_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_format {
	LOG_FORMAT_AUTO, /* text when the log fd is a terminal, else JSON */
	LOG_FORMAT_JSON,
	LOG_FORMAT_TEXT,
};

enum log_field_type { LOG_FIELD_END, LOG_FIELD_STR, LOG_FIELD_INT, LOG_FIELD_BOOL };

/*
 * One key/value pair of a log line. Build them with LOG_STR, LOG_INT and LOG_BOOL; a
 * LOG_STR whose value is NULL is left out of the line.
 */
struct log_field {
	const char *key;
	enum log_field_type type;
	union {
		const char *s;
		long long i;
		bool b;
	};
};

#define LOG_STR(k, v)  ((struct log_field){ .key = (k), .type = LOG_FIELD_STR, .s = (v) })
#define LOG_INT(k, v)  ((struct log_field){ .key = (k), .type = LOG_FIELD_INT, .i = (long long)(v) })
#define LOG_BOOL(k, v) ((struct log_field){ .key = (k), .type = LOG_FIELD_BOOL, .b = (v) })
#define LOG_END_       ((struct log_field){ .key = 0, .type = LOG_FIELD_END })

/*
 * log_init - set the program name, the lowest level written, the format and the file
 * descriptor lines go to (normally 2). May be called again, e.g. once the config is read.
 */
void log_init(const char *prog, enum log_level level, enum log_format format, int fd);

/* The names of the levels and formats, in enum order, NULL-terminated. */
extern const char *const log_level_names[];
extern const char *const log_format_names[];

/* log_enabled - would a line at this level be written? For skipping costly fields. */
bool log_enabled(enum log_level level);

/*
 * log_write - write one line: ts, level, msg, then the fields up to the LOG_FIELD_END
 * entry. With with_errno, an "error" field holds strerror of the errno at entry.
 * Writes with one write(2) so that lines from threads never interleave. errno is
 * preserved. The macros below are the interface; call this directly only to pass a
 * level computed at run time.
 */
void log_write(enum log_level level, bool with_errno, const char *msg,
               const struct log_field *fields);

/*
 * The interface: a constant message, then fields. log_warn and log_error add
 * strerror(errno) as the field "error"; the -x forms do not. Both keep errno.
 *	log_info("listening", LOG_STR("addr", addr), LOG_INT("port", port));
 */
#define LOG_AT_(lvl, e, msg, ...)                                                                  \
	log_write((lvl), (e), (msg),                                                               \
	          (const struct log_field[]){ __VA_ARGS__ __VA_OPT__(, ) LOG_END_ })
#define log_debug(msg, ...)  LOG_AT_(LOG_DEBUG, false, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_info(msg, ...)   LOG_AT_(LOG_INFO, false, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_warn(msg, ...)   LOG_AT_(LOG_WARN, true, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_warnx(msg, ...)  LOG_AT_(LOG_WARN, false, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_error(msg, ...)  LOG_AT_(LOG_ERROR, true, msg __VA_OPT__(, ) __VA_ARGS__)
#define log_errorx(msg, ...) LOG_AT_(LOG_ERROR, false, msg __VA_OPT__(, ) __VA_ARGS__)

/*
 * fatal, fatalx - log at error level and exit(1). Only for start-up failures and broken
 * invariants: one bad peer or request never ends a daemon.
 */
#define fatal(msg, ...)                                                                            \
	do {                                                                                       \
		log_error(msg __VA_OPT__(, ) __VA_ARGS__);                                         \
		log_exit_(1);                                                                      \
	} while (0)
#define fatalx(msg, ...)                                                                           \
	do {                                                                                       \
		log_errorx(msg __VA_OPT__(, ) __VA_ARGS__);                                        \
		log_exit_(1);                                                                      \
	} while (0)
void log_exit_(int status) __attribute__((noreturn));

/*
 * log_json_escape - append s as the inside of a JSON string (no quotes) to buf at *pos,
 * escaping quotes, backslashes and control characters, and replacing bytes that are
 * not valid UTF-8 with U+FFFD. Stops, leaving *pos at most size - 1, when buf is full.
 * Shared with the audit writers so that attacker-chosen strings never break a line.
 */
void log_json_escape(char *buf, size_t size, size_t *pos, const char *s);

#endif
