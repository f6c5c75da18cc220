/* SPDX-License-Identifier: Apache-2.0 */
/* YAML configuration into a struct, through one table per program that names every key. */
#ifndef MESHLET_CONFIG_H
#define MESHLET_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum config_type {
	CONFIG_T_BOOL,     /* bool */
	CONFIG_T_INT,      /* int64_t within [min, max] */
	CONFIG_T_STRING,   /* char *, malloc'd, at most max bytes (0: 4096) */
	CONFIG_T_ENUM,     /* int: index into choices */
	CONFIG_T_DURATION, /* int64_t milliseconds within [min, max]; written "90s", "1h30m" */
	CONFIG_T_SIZE,     /* int64_t bytes within [min, max]; written "512", "64KiB", "3MiB" */
	CONFIG_T_STRLIST,  /* struct config_strlist; each item checked like a string */
};

/* A list of strings. Items and the array are malloc'd; config_free releases them. */
struct config_strlist {
	char **items;
	size_t n;
};

/*
 * A check for one string value (or list item) beyond its type. Returns true when the
 * value is good; otherwise writes why into why (a phrase like "not a port number") and
 * returns false.
 */
typedef bool (*config_validate_fn)(const char *value, char *why, size_t why_size);

/* One configuration key. Tables end with a row whose name is NULL. */
struct config_key {
	const char *name; /* dotted path: "tls.cert_file" is key cert_file in mapping tls */
	enum config_type type;
	size_t offset;    /* of the field in the program's struct */
	int64_t min, max; /* bounds for INT, DURATION, SIZE; max length for STRING/STRLIST */
	const char *def;  /* default, written as in a flag; NULL for none */
	const char *const *choices;  /* ENUM: the allowed words, NULL-terminated */
	config_validate_fn validate; /* STRING and STRLIST items: optional */
	const char *help;            /* one line for the reference documentation */
};

struct config;

/* A program's whole configuration: its keys, and the rules that span keys. */
struct config_schema {
	const char *program;
	const struct config_key *keys;
	void (*check)(struct config *c); /* calls config_error for each broken rule */
};

/* The state of one load: where each key came from, and every error found. */
struct config {
	const struct config_schema *schema;
	void *obj;
	char *file;          /* the file loaded, for messages */
	unsigned *line;      /* per key: the line of the file that set it, 0 if none */
	const char **origin; /* per key: the flag that set it last, or NULL */
	char **errors;
	size_t nerrors;
};

/*
 * Row builders. The field's C type is checked at compile time: a mismatch between a
 * row's type and its field is a "comparison of distinct pointer types" error.
 */
#define CONFIG_OFF_(T, S, F) (offsetof(S, F) + 0 * sizeof(&((S *)0)->F == (T *)0))
#define CONFIG_BOOL(N, S, F, DEF, HELP)                                                            \
	{                                                                                          \
		.name = (N), .type = CONFIG_T_BOOL, .offset = CONFIG_OFF_(bool, S, F),             \
		.def = (DEF), .help = (HELP)                                                       \
	}
#define CONFIG_INT(N, S, F, MIN, MAX, DEF, HELP)                                                   \
	{                                                                                          \
		.name = (N), .type = CONFIG_T_INT, .offset = CONFIG_OFF_(int64_t, S, F),           \
		.min = (MIN), .max = (MAX), .def = (DEF), .help = (HELP)                           \
	}
#define CONFIG_STRING(N, S, F, MAXLEN, DEF, VALIDATE, HELP)                                        \
	{                                                                                          \
		.name = (N), .type = CONFIG_T_STRING, .offset = CONFIG_OFF_(char *, S, F),         \
		.max = (MAXLEN), .def = (DEF), .validate = (VALIDATE), .help = (HELP)              \
	}
#define CONFIG_ENUM(N, S, F, CHOICES, DEF, HELP)                                                   \
	{                                                                                          \
		.name = (N), .type = CONFIG_T_ENUM, .offset = CONFIG_OFF_(int, S, F),              \
		.choices = (CHOICES), .def = (DEF), .help = (HELP)                                 \
	}
#define CONFIG_DURATION(N, S, F, MIN, MAX, DEF, HELP)                                              \
	{                                                                                          \
		.name = (N), .type = CONFIG_T_DURATION, .offset = CONFIG_OFF_(int64_t, S, F),      \
		.min = (MIN), .max = (MAX), .def = (DEF), .help = (HELP)                           \
	}
#define CONFIG_SIZE(N, S, F, MIN, MAX, DEF, HELP)                                                  \
	{                                                                                          \
		.name = (N), .type = CONFIG_T_SIZE, .offset = CONFIG_OFF_(int64_t, S, F),          \
		.min = (MIN), .max = (MAX), .def = (DEF), .help = (HELP)                           \
	}
#define CONFIG_STRLIST(N, S, F, MAXLEN, DEF, VALIDATE, HELP)                                       \
	{                                                                                          \
		.name = (N), .type = CONFIG_T_STRLIST,                                             \
		.offset = CONFIG_OFF_(struct config_strlist, S, F), .max = (MAXLEN), .def = (DEF), \
		.validate = (VALIDATE), .help = (HELP)                                             \
	}

/* Bounds of durations, which are held in milliseconds. */
#define CONFIG_SECONDS(n) ((int64_t)(n)*1000)
#define CONFIG_MINUTES(n) ((int64_t)(n)*60 * 1000)
#define CONFIG_HOURS(n)   ((int64_t)(n)*3600 * 1000)

/* Larger files are refused: a configuration is a few KiB. */
#define CONFIG_FILE_MAX (1024 * 1024)

/*
 * config_init - start a load of schema into obj (which the caller zeroed) and apply every
 * default. Returns 0, or -ENOMEM. A default that does not pass its own key's checks is
 * recorded as an error (a bug in the table, which the unit tests look for).
 */
int config_init(struct config *c, const struct config_schema *schema, void *obj);

/*
 * config_load_file - read a YAML file into the struct. Every problem is recorded with
 * file:line and the load goes on, so that one pass reports them all: unknown keys (with
 * a suggestion), wrong types, values out of bounds, duplicate keys. Returns 0 when the
 * file was clean, ERR_CONFIG_INVALID when errors were recorded, or -errno when the file
 * could not be read (also recorded).
 */
int config_load_file(struct config *c, const char *path);

/* config_load_string - the same for YAML text held in memory; name stands for the file. */
int config_load_string(struct config *c, const char *name, const char *yaml, size_t len);

/*
 * config_set - set key from text, as a command-line flag does; origin names the flag in
 * messages ("--listen"). A list is written comma-separated. Returns 0, or
 * ERR_CONFIG_INVALID with the error recorded (an unknown key is ERR_CONFIG_UNKNOWN_KEY).
 */
int config_set(struct config *c, const char *key, const char *value, const char *origin);

/* config_check - run the schema's rules that span keys. Returns 0 or ERR_CONFIG_INVALID. */
int config_check(struct config *c);

/*
 * config_error - record an error about key, prefixed with where the key was set:
 * "file:line: key: ...", "--flag: ...", or "key: ..." for a default.
 */
void config_error(struct config *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* config_is_set - was key set by the file or a flag (not just its default)? */
bool config_is_set(const struct config *c, const char *key);

/* config_print_errors - write every recorded error, one per line, to f. */
void config_print_errors(const struct config *c, FILE *f);

/* config_release - free the load's bookkeeping; the values in obj stay. */
void config_release(struct config *c);

/* config_free - free every string and list that a load put into obj. */
void config_free(const struct config_schema *schema, void *obj);

/* config_find - the row for a dotted key name, or NULL. */
const struct config_key *config_find(const struct config_schema *schema, const char *name);

/*
 * config_describe - write the reference of every key (name, type, bounds, default,
 * help) as a Markdown table, so that the documentation is made from the tables.
 */
void config_describe(const struct config_schema *schema, FILE *f);

/* Validators for common string settings. */
bool config_valid_listen(const char *value, char *why, size_t why_size); /* host:port */
bool config_valid_trust_domain(const char *value, char *why, size_t why_size);
bool config_valid_dns_label(const char *value, char *why, size_t why_size); /* a namespace */

#endif
