/* SPDX-License-Identifier: Apache-2.0 */
/* The error table's messages and names, and struct err. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "meshlet/err.h"

static const char *const err_messages[ERR_COUNT_] = {
#define ERR_MSG_(name, text) [name##_INDEX_] = text,
	ERR_TABLE(ERR_MSG_)
#undef ERR_MSG_
};

static const char *const err_names[ERR_COUNT_] = {
#define ERR_NAME_(name, text) [name##_INDEX_] = #name,
	ERR_TABLE(ERR_NAME_)
#undef ERR_NAME_
};

static int err_index(int code)
{
	long idx = -(long)code - ERR_BASE;

	return idx >= 0 && idx < ERR_COUNT_ ? (int)idx : -1;
}

const char *err_str(int code)
{
	int idx = err_index(code);

	if (idx >= 0)
		return err_messages[idx];
	if (code == 0)
		return "success";
	/* strerrordesc_np, unlike strerror, returns static text: safe from any thread. */
	if (code < 0 && strerrordesc_np(-code) != NULL)
		return strerrordesc_np(-code);
	return "unknown error";
}

const char *err_name(int code)
{
	int idx = err_index(code);

	return idx >= 0 ? err_names[idx] : "errno";
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	return code;
}
