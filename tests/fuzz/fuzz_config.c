/* SPDX-License-Identifier: Apache-2.0 */
/* libFuzzer harness for the YAML configuration loader, over a table with every key type. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "meshlet/config.h"

struct fuzz_settings {
	bool flag;
	int64_t number;
	char *text;
	int choice;
	int64_t duration;
	int64_t size;
	struct config_strlist list;
	char *listen;
	char *td;
};

static const char *const fuzz_choices[] = { "one", "two", NULL };

#define S struct fuzz_settings
static const struct config_key fuzz_keys[] = {
	CONFIG_BOOL("flag", S, flag, "false", ""),
	CONFIG_INT("a.number", S, number, -5, 5000, "1", ""),
	CONFIG_STRING("a.b.text", S, text, 16, "x", NULL, ""),
	CONFIG_ENUM("choice", S, choice, fuzz_choices, "one", ""),
	CONFIG_DURATION("t.duration", S, duration, 0, CONFIG_HOURS(1), "1s", ""),
	CONFIG_SIZE("t.size", S, size, 0, 1 << 20, "1KiB", ""),
	CONFIG_STRLIST("list", S, list, 63, "a,b", config_valid_dns_label, ""),
	CONFIG_STRING("listen", S, listen, 0, NULL, config_valid_listen, ""),
	CONFIG_STRING("td", S, td, 255, NULL, config_valid_trust_domain, ""),
	{ .name = NULL },
};
#undef S

static const struct config_schema fuzz_schema = { .program = "fuzz", .keys = fuzz_keys };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_settings s;
	struct config c;
	int rc;

	memset(&s, 0, sizeof(s));
	if (config_init(&c, &fuzz_schema, &s) != 0)
		return 0;
	rc = config_load_string(&c, "fuzz.yaml", (const char *)data, size);
	/* A load reports errors exactly when it says it failed, and values stay in bounds. */
	if ((rc == 0) != (c.nerrors == 0) || s.number < -5 || s.number > 5000 ||
	    (s.text != NULL && strlen(s.text) > 16) || s.choice < 0 || s.choice > 1 ||
	    s.duration < 0 || s.duration > CONFIG_HOURS(1) || s.size > (1 << 20))
		abort();
	config_release(&c);
	config_free(&fuzz_schema, &s);
	return 0;
}
