/* SPDX-License-Identifier: Apache-2.0 */
/* Tests for lib/audit.c: one whole JSON line per record, in the file and on stdout. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "meshlet/audit.h"
#include "meshlet/err.h"
#include "meshlet/jwrite.h"

static char dir[] = "/tmp/meshlet-test-audit.XXXXXX";
static char path[64];
static int saved_stdout = -1;

static int setup(void **state)
{
	(void)state;
	if (mkdtemp(dir) == NULL)
		return -1;
	snprintf(path, sizeof(path), "%s/audit.log", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

/*
 * Records also go to stdout, where the test runner reads its own report: stdout goes to
 * /dev/null while records are written, and only the file is read back.
 */
static void quiet(bool on)
{
	int null;

	fflush(stdout);
	if (on) {
		null = open("/dev/null", O_WRONLY);
		assert_true(null >= 0);
		saved_stdout = dup(STDOUT_FILENO);
		dup2(null, STDOUT_FILENO);
		close(null);
	} else {
		dup2(saved_stdout, STDOUT_FILENO);
		close(saved_stdout);
	}
}

/* The file's lines, parsed; each must be a JSON object with "ts" first. */
static json_t *read_lines(void)
{
	json_t *lines = json_array();
	char buf[1 << 16];
	FILE *f = fopen(path, "r");

	assert_non_null(f);
	while (fgets(buf, sizeof(buf), f) != NULL) {
		json_error_t je;
		json_t *j;

		assert_int_equal(buf[strlen(buf) - 1], '\n');
		assert_memory_equal(buf, "{\"ts\":\"", 7);
		j = json_loads(buf, JSON_REJECT_DUPLICATES, &je);
		if (j == NULL)
			fail_msg("not JSON: %s (%s)", buf, je.text);
		json_array_append_new(lines, j);
	}
	fclose(f);
	return lines;
}

static void test_lines(void **state)
{
	struct err e = { 0 };
	struct audit *a;
	struct jwrite w;
	json_t *lines;
	char *text, *big;
	size_t len;

	(void)state;
	unlink(path);
	a = audit_open(path, &e);
	assert_non_null(a);
	quiet(true);
	/* Members as a writer makes them, with a name that is not UTF-8. */
	jwrite_init(&w, 0);
	jwrite_lit(&w, "\"event\":\"x\",\"name\":");
	jwrite_str(&w, "we\xff"
	               "b");
	text = jwrite_take(&w, &len);
	assert_int_equal(audit_write(a, text, len), 0);
	free(text);
	/* No members at all. */
	assert_int_equal(audit_write(a, "", 0), 0);
	/* Longer than the stack buffer and than an atomic pipe write. */
	big = malloc(20000);
	assert_non_null(big);
	memcpy(big, "\"pad\":\"", 7);
	memset(big + 7, 'p', 20000 - 8);
	big[20000 - 1] = '"';
	assert_int_equal(audit_write(a, big, 20000), 0);
	quiet(false);
	free(big);
	audit_close(a);

	lines = read_lines();
	assert_int_equal(json_array_size(lines), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(lines, 0), "event")),
	                    "x");
	assert_string_equal(json_string_value(json_object_get(json_array_get(lines, 0), "name")),
	                    "we\xef\xbf\xbd"
	                    "b");
	assert_int_equal(json_object_size(json_array_get(lines, 1)), 1);
	assert_int_equal(json_string_length(json_object_get(json_array_get(lines, 2), "pad")),
	                 20000 - 8);
	/* RFC 3339 with milliseconds, UTC: 2026-11-26T13:00:00.123Z */
	assert_int_equal(strlen(json_string_value(json_object_get(json_array_get(lines, 0), "ts"))),
	                 24);
	json_decref(lines);
}

static void *writer(void *arg)
{
	struct audit *a = arg;
	char rec[3000];
	int n;

	for (int i = 0; i < 200; i++) {
		/* Short and long lines from each thread, so both locking paths mix. */
		n = snprintf(rec, sizeof(rec), "\"i\":%d,\"pad\":\"%0*d\"", i, i % 2 ? 10 : 2900,
		             0);
		if (audit_write(a, rec, (size_t)n) != 0)
			return (void *)1;
	}
	return NULL;
}

/* Lines from many threads never interleave. */
static void test_threads(void **state)
{
	struct err e = { 0 };
	pthread_t t[4];
	struct audit *a;
	json_t *lines;
	void *rc[4];

	(void)state;
	unlink(path);
	a = audit_open(path, &e);
	assert_non_null(a);
	quiet(true);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, writer, a), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_join(t[i], &rc[i]), 0);
	quiet(false);
	for (int i = 0; i < 4; i++)
		assert_null(rc[i]);
	audit_close(a);
	lines = read_lines();
	assert_int_equal(json_array_size(lines), 800);
	json_decref(lines);
}

static void test_open_errors(void **state)
{
	struct err e = { 0 };
	struct stat st;
	struct audit *a;

	(void)state;
	assert_null(audit_open("/nonexistent-dir/audit.log", &e));
	assert_int_equal(e.code, -ENOENT);
	assert_non_null(strstr(e.msg, "/nonexistent-dir/audit.log"));
	/* A new file is made private to the daemon. */
	unlink(path);
	a = audit_open(path, &e);
	assert_non_null(a);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	audit_close(a);
	audit_close(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lines),
		cmocka_unit_test(test_threads),
		cmocka_unit_test(test_open_errors),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
