/* SPDX-License-Identifier: Apache-2.0 */
/* A strict HTTP/1.1 message-head parser and chunked-body framer (RFC 9110, RFC 9112). */
#include <stddef.h>
#include <string.h>
#include <strings.h>

#include "http1.h"

/* tchar of RFC 9110 5.6.2: the characters of a token. */
static bool is_tchar(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_vchar(unsigned char c)
{
	return c >= 0x21 && c <= 0x7e;
}

/* A field value's byte: VCHAR, obs-text, SP, HTAB. */
static bool is_field_char(unsigned char c)
{
	return c == ' ' || c == '\t' || is_vchar(c) || c >= 0x80;
}

static int fail(struct http1_error *why, int status, const char *reason)
{
	why->status = status;
	why->reason = reason;
	return -1;
}

/* Case-insensitive: field names, codings, connection options. */
static bool str_is(struct http1_str s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && strncasecmp(s.p, lit, n) == 0;
}

/* Exact: methods are case-sensitive. */
static bool str_eq(struct http1_str s, const char *lit)
{
	size_t n = strlen(lit);

	return s.len == n && memcmp(s.p, lit, n) == 0;
}

long http1_head_end(const char *buf, size_t len, size_t limit, size_t *scan,
                    struct http1_error *why)
{
	size_t i = *scan;
	size_t max = len < limit ? len : limit;
	size_t lead = 0;

	/* A few empty lines may come before a request (RFC 9112 2.2); many are an attack. */
	while (lead + 1 < len && buf[lead] == '\r' && buf[lead + 1] == '\n')
		lead += 2;
	if (lead > 2 * HTTP1_EMPTY_LINES_MAX)
		return fail(why, 400, "too many empty lines before the request");

	for (; i < max; i++) {
		if (buf[i] == '\r') {
			if (i + 1 < len && buf[i + 1] != '\n')
				return fail(why, 400, "bare CR in the head");
			continue;
		}
		if (buf[i] != '\n')
			continue;
		if (i == 0 || buf[i - 1] != '\r')
			return fail(why, 400, "bare LF in the head");
		/* An empty line ends the head, unless it is one of the CRLFs before it starts. */
		if (i >= 3 && buf[i - 2] == '\n' && buf[i - 3] == '\r' && lead < i - 1)
			return (long)(i + 1);
	}
	/* Keep a trailing CR to be looked at again with the byte after it. */
	*scan = i > 0 && i == len && buf[i - 1] == '\r' ? i - 1 : i;
	if (len >= limit)
		return fail(why, 431, "request head too large");
	return 0;
}

/* Splits the head into lines: *line and its length, without CRLF. */
static bool next_line(const char **pos, const char *end, struct http1_str *line)
{
	const char *p = *pos;
	const char *cr = memchr(p, '\r', (size_t)(end - p));

	if (cr == NULL || cr + 1 >= end)
		return false;
	line->p = p;
	line->len = (size_t)(cr - p);
	*pos = cr + 2;
	return true;
}

static void trim(struct http1_str *s)
{
	while (s->len > 0 && (s->p[0] == ' ' || s->p[0] == '\t')) {
		s->p++;
		s->len--;
	}
	while (s->len > 0 && (s->p[s->len - 1] == ' ' || s->p[s->len - 1] == '\t'))
		s->len--;
}

/* One field line: name ":" OWS value OWS. */
static int parse_field(struct http1_str line, struct http1_header *h, struct http1_error *why)
{
	size_t i = 0;

	if (line.len > 0 && (line.p[0] == ' ' || line.p[0] == '\t'))
		return fail(why, 400, "obsolete line folding");
	while (i < line.len && is_tchar((unsigned char)line.p[i]))
		i++;
	if (i == 0)
		return fail(why, 400, "malformed field name");
	if (i == line.len || line.p[i] != ':') {
		size_t j = i;

		while (j < line.len && (line.p[j] == ' ' || line.p[j] == '\t'))
			j++;
		return fail(why, 400, j > i && j < line.len && line.p[j] == ':'
		                          ? "whitespace before ':' in a field"
		                          : "malformed field name");
	}
	h->name.p = line.p;
	h->name.len = i;
	for (size_t j = i + 1; j < line.len; j++)
		if (!is_field_char((unsigned char)line.p[j]))
			return fail(why, 400, "control character in a field value");
	h->value.p = line.p + i + 1;
	h->value.len = line.len - i - 1;
	trim(&h->value);
	return 0;
}

/* Content-Length: 1*DIGIT, without overflow. */
static int parse_length(struct http1_str v, uint64_t *out)
{
	uint64_t n = 0;

	if (v.len == 0 || v.len > 19)
		return -1;
	for (size_t i = 0; i < v.len; i++) {
		if (v.p[i] < '0' || v.p[i] > '9')
			return -1;
		n = n * 10 + (uint64_t)(v.p[i] - '0');
	}
	*out = n;
	return 0;
}

/* Does the comma-separated list v hold token (any case)? */
static bool list_has(struct http1_str v, const char *token)
{
	const char *p = v.p, *end = v.p + v.len;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p));
		struct http1_str item = { p, (size_t)((comma != NULL ? comma : end) - p) };

		trim(&item);
		if (str_is(item, token))
			return true;
		p = comma != NULL ? comma + 1 : end;
	}
	return false;
}

/* The characters of a URI authority (RFC 3986: reg-name, IP-literal, port), without '@'. */
static bool valid_authority(struct http1_str a)
{
	if (a.len == 0)
		return false;
	for (size_t i = 0; i < a.len; i++) {
		unsigned char c = (unsigned char)a.p[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      strchr("-._~!$&'()*+,;=%:[]", c) != NULL) ||
		    c == 0)
			return false;
	}
	return true;
}

static void path_of(struct http1_str from, struct http1_str *path)
{
	const char *q = memchr(from.p, '?', from.len);

	path->p = from.p;
	path->len = q != NULL ? (size_t)(q - from.p) : from.len;
}

/* Is c an unreserved character of RFC 3986 (which percent-encoding must not hide)? */
static bool is_unreserved(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static int hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * A path the application reads as the policy does: no "." or ".." segment, no empty
 * segment ("//"), no backslash, and no percent-encoded unreserved character; a '%' must
 * start an escape.
 */
static bool normal_path(struct http1_str p)
{
	for (size_t i = 0; i < p.len; i++) {
		unsigned char c = (unsigned char)p.p[i];

		if (c == '\\')
			return false;
		if (c == '%') {
			int hi, lo;

			if (i + 2 >= p.len)
				return false;
			hi = hex_digit((unsigned char)p.p[i + 1]);
			lo = hex_digit((unsigned char)p.p[i + 2]);
			if (hi < 0 || lo < 0 || is_unreserved(hi * 16 + lo))
				return false;
			i += 2;
			continue;
		}
		if (c != '/')
			continue;
		/* A segment starts after this slash: "", "." and ".." are refused. */
		if (i + 1 < p.len && p.p[i + 1] == '/')
			return false;
		if (i + 1 < p.len && p.p[i + 1] == '.' &&
		    (i + 2 == p.len || p.p[i + 2] == '/' ||
		     (p.p[i + 2] == '.' && (i + 3 == p.len || p.p[i + 3] == '/'))))
			return false;
	}
	return true;
}

/* method SP request-target SP HTTP-version */
static int parse_request_line(struct http1_str line, struct http1_request *req,
                              struct http1_error *why)
{
	size_t i = 0, t;

	while (i < line.len && is_tchar((unsigned char)line.p[i]))
		i++;
	if (i == 0 || i == line.len || line.p[i] != ' ')
		return fail(why, 400, "malformed request line");
	req->method = (struct http1_str){ line.p, i };
	t = ++i;
	while (i < line.len && is_vchar((unsigned char)line.p[i]))
		i++;
	if (i == t || i == line.len || line.p[i] != ' ')
		return fail(why, 400, "malformed request line");
	req->target = (struct http1_str){ line.p + t, i - t };
	i++;
	if (line.len - i != 8 || strncmp(line.p + i, "HTTP/", 5) != 0 || line.p[i + 6] != '.' ||
	    line.p[i + 5] < '0' || line.p[i + 5] > '9' || line.p[i + 7] < '0' ||
	    line.p[i + 7] > '9')
		return fail(why, 400, "malformed request line");
	if (line.p[i + 5] != '1' || line.p[i + 7] > '1')
		return fail(why, 505, "HTTP version not supported");
	req->minor = line.p[i + 7] - '0';
	if (memchr(req->target.p, '#', req->target.len) != NULL)
		return fail(why, 400, "fragment in the request target");
	return 0;
}

/* The four forms of RFC 9112 3.2. */
static int parse_target(struct http1_request *req, struct http1_error *why)
{
	struct http1_str t = req->target;
	bool connect = str_eq(req->method, "CONNECT");

	if (connect)
		return fail(why, 405, "CONNECT is not supported on HTTP ports");
	if (t.p[0] == '/') {
		path_of(t, &req->path);
		return 0;
	}
	if (t.len == 1 && t.p[0] == '*') {
		if (!str_eq(req->method, "OPTIONS"))
			return fail(why, 400, "'*' is a target only for OPTIONS");
		req->path = (struct http1_str){ t.p, 0 };
		return 0;
	}
	for (size_t s = 0; s < 2; s++) {
		const char *scheme = s == 0 ? "http://" : "https://";
		size_t n = strlen(scheme);

		if (t.len > n && strncasecmp(t.p, scheme, n) == 0) {
			struct http1_str rest = { t.p + n, t.len - n };
			const char *slash = memchr(rest.p, '/', rest.len);
			const char *q = memchr(rest.p, '?', rest.len);
			const char *end = slash != NULL ? slash : q != NULL ? q : rest.p + rest.len;

			if (q != NULL && q < end)
				end = q;
			req->host = (struct http1_str){ rest.p, (size_t)(end - rest.p) };
			if (!valid_authority(req->host))
				return fail(why, 400, "malformed authority in the request target");
			if (end < rest.p + rest.len && *end == '/')
				path_of((struct http1_str){ end, (size_t)(rest.p + rest.len - end) },
				        &req->path);
			else
				req->path = (struct http1_str){ "/", 1 };
			return 1;
		}
	}
	return fail(why, 400, "malformed request target");
}

int http1_parse_request(const char *buf, size_t len, struct http1_request *req,
                        struct http1_error *why)
{
	const char *pos = buf, *end = buf + len;
	struct http1_str line;
	const struct http1_header *cl = NULL, *te = NULL, *host = NULL, *conn = NULL,
	                          *upgrade = NULL;
	int absolute;

	memset(req, 0, offsetof(struct http1_request, headers));
	why->status = 0;
	while (end - pos >= 2 && pos[0] == '\r' && pos[1] == '\n')
		pos += 2;
	if (!next_line(&pos, end, &line) || parse_request_line(line, req, why) < 0)
		return why->status != 0 ? -1 : fail(why, 400, "malformed request line");
	absolute = parse_target(req, why);
	if (absolute < 0)
		return -1;
	while (next_line(&pos, end, &line) && line.len > 0) {
		struct http1_header *h;

		if (req->nheaders == HTTP1_HEADERS_MAX)
			return fail(why, 431, "too many header fields");
		h = &req->headers[req->nheaders];
		if (parse_field(line, h, why) < 0)
			return -1;
		req->nheaders++;
		if (str_is(h->name, "content-length")) {
			if (cl != NULL)
				return fail(why, 400, "repeated Content-Length");
			cl = h;
		} else if (str_is(h->name, "transfer-encoding")) {
			if (te != NULL)
				return fail(why, 400, "repeated Transfer-Encoding");
			te = h;
		} else if (str_is(h->name, "host")) {
			if (host != NULL)
				return fail(why, 400, "repeated Host");
			host = h;
		} else if (str_is(h->name, "connection")) {
			if (conn != NULL)
				return fail(why, 400, "repeated Connection");
			conn = h;
		} else if (str_is(h->name, "upgrade")) {
			upgrade = h;
		}
	}
	if (req->minor == 1 && host == NULL)
		return fail(why, 400, "HTTP/1.1 request without Host");
	if (host != NULL && host->value.len > 0 && !valid_authority(host->value))
		return fail(why, 400, "malformed Host");
	if (absolute == 0) {
		req->host = host != NULL ? host->value : (struct http1_str){ buf, 0 };
	} else if (host != NULL && (host->value.len != req->host.len ||
	                            strncasecmp(host->value.p, req->host.p, req->host.len) != 0)) {
		return fail(why, 400, "Host differs from the request target's authority");
	}
	if (!normal_path(req->path))
		return fail(why, 400, "path is not in normal form");
	if (te != NULL && cl != NULL)
		return fail(why, 400, "Transfer-Encoding with Content-Length");
	if (te != NULL) {
		if (req->minor == 0)
			return fail(why, 400, "Transfer-Encoding in an HTTP/1.0 request");
		if (!str_is(te->value, "chunked"))
			return fail(why, 501, "Transfer-Encoding other than chunked");
		req->framing = HTTP1_BODY_CHUNKED;
	} else if (cl != NULL) {
		if (parse_length(cl->value, &req->length) < 0)
			return fail(why, 400, "malformed Content-Length");
		req->framing = req->length > 0 ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
	}
	if (req->minor == 1)
		req->keep_alive = conn == NULL || !list_has(conn->value, "close");
	else
		req->keep_alive = conn != NULL && list_has(conn->value, "keep-alive");
	if (upgrade != NULL) {
		/* WebSocket is the one protocol the proxy lets a connection switch to. */
		if (!str_is(upgrade->value, "websocket"))
			return fail(why, 400, "Upgrade to a protocol other than WebSocket");
		req->upgrade = conn != NULL && list_has(conn->value, "upgrade");
	}
	return 0;
}

int http1_parse_response(const char *buf, size_t len, bool head_request, bool connect,
                         struct http1_response *resp, struct http1_error *why)
{
	const char *pos = buf, *end = buf + len;
	struct http1_str line;
	bool chunked = false, has_te = false, has_cl = false;

	memset(resp, 0, sizeof(*resp));
	if (!next_line(&pos, end, &line) || line.len < 12 || strncmp(line.p, "HTTP/1.", 7) != 0 ||
	    (line.p[7] != '0' && line.p[7] != '1') || line.p[8] != ' ' || line.p[9] < '1' ||
	    line.p[9] > '9' || line.p[10] < '0' || line.p[10] > '9' || line.p[11] < '0' ||
	    line.p[11] > '9' || (line.len > 12 && line.p[12] != ' '))
		return fail(why, 502, "malformed status line");
	resp->minor = line.p[7] - '0';
	resp->status = (line.p[9] - '0') * 100 + (line.p[10] - '0') * 10 + (line.p[11] - '0');
	while (next_line(&pos, end, &line) && line.len > 0) {
		struct http1_header h;

		if (parse_field(line, &h, why) < 0)
			return fail(why, 502, why->reason);
		if (str_is(h.name, "transfer-encoding")) {
			/* RFC 9112 6.3: chunked must be the final coding, else the body runs to
			 * the end of the connection. */
			struct http1_str v = h.value;
			const char *comma = v.len > 0 ? memrchr(v.p, ',', v.len) : NULL;

			if (comma != NULL)
				v = (struct http1_str){ comma + 1, (size_t)(v.p + v.len - comma - 1) };
			trim(&v);
			chunked = str_is(v, "chunked");
			has_te = true;
		} else if (str_is(h.name, "content-length")) {
			uint64_t n;

			if (parse_length(h.value, &n) < 0 || (has_cl && n != resp->length))
				return fail(why, 502, "malformed Content-Length in a response");
			resp->length = n;
			has_cl = true;
		}
	}
	if (head_request || (resp->status >= 100 && resp->status < 200) || resp->status == 204 ||
	    resp->status == 304 || (connect && resp->status >= 200 && resp->status < 300))
		resp->framing = HTTP1_BODY_NONE;
	else if (has_te)
		resp->framing = chunked ? HTTP1_BODY_CHUNKED : HTTP1_BODY_EOF;
	else if (has_cl)
		resp->framing = resp->length > 0 ? HTTP1_BODY_LENGTH : HTTP1_BODY_NONE;
	else
		resp->framing = HTTP1_BODY_EOF;
	return 0;
}

const struct http1_header *http1_header_get(const struct http1_request *req, const char *name)
{
	for (size_t i = 0; i < req->nheaders; i++)
		if (str_is(req->headers[i].name, name))
			return &req->headers[i];
	return NULL;
}

/* The chunked coding (RFC 9112 7.1), a byte at a time. */
enum {
	C_SIZE,        /* chunk-size digits */
	C_SIZE_BWS,    /* whitespace after the size: only ';' may follow */
	C_EXT,         /* chunk extensions, up to CR */
	C_SIZE_LF,     /* the LF after the size line */
	C_DATA,        /* remaining bytes of data */
	C_DATA_CR,     /* the CRLF after the data */
	C_DATA_LF,     /* */
	C_TRAILER,     /* at the start of a trailer line */
	C_TRAILER_IN,  /* inside a trailer line */
	C_TRAILER_LF,  /* the LF ending a trailer line */
	C_END_LF,      /* the LF ending the trailer section */
};

long http1_chunked_feed(struct http1_chunked *c, const char *buf, size_t len, bool *done)
{
	size_t i = 0;

	*done = false;
	while (i < len) {
		unsigned char b = (unsigned char)buf[i];

		switch (c->state) {
		case C_SIZE: {
			int v = hex_digit(b);

			if (v >= 0) {
				if (c->digits == 15)
					return -1; /* a chunk over 2^60 bytes: refuse, never wrap */
				c->remaining = c->remaining * 16 + (uint64_t)v;
				c->digits++;
				i++;
				continue;
			}
			if (c->digits == 0)
				return -1;
			if (b == ';')
				c->state = C_EXT;
			else if (b == ' ' || b == '\t')
				c->state = C_SIZE_BWS;
			else if (b == '\r')
				c->state = C_SIZE_LF;
			else
				return -1;
			i++;
			break;
		}
		case C_SIZE_BWS:
			if (b == ';')
				c->state = C_EXT;
			else if (b != ' ' && b != '\t')
				return -1;
			i++;
			break;
		case C_EXT:
			if (b == '\r') {
				c->state = C_SIZE_LF;
			} else if (!is_field_char(b) || ++c->ext > HTTP1_CHUNK_EXT_MAX) {
				return -1;
			}
			i++;
			break;
		case C_SIZE_LF:
			if (b != '\n')
				return -1;
			i++;
			c->ext = 0;
			c->digits = 0;
			c->state = c->remaining > 0 ? C_DATA : C_TRAILER;
			break;
		case C_DATA: {
			size_t n = len - i;

			if (n > c->remaining)
				n = (size_t)c->remaining;
			c->remaining -= n;
			i += n;
			if (c->remaining == 0)
				c->state = C_DATA_CR;
			break;
		}
		case C_DATA_CR:
			if (b != '\r')
				return -1;
			c->state = C_DATA_LF;
			i++;
			break;
		case C_DATA_LF:
			if (b != '\n')
				return -1;
			c->state = C_SIZE;
			i++;
			break;
		case C_TRAILER:
			if (b == '\r') {
				c->state = C_END_LF;
			} else if (b == ' ' || b == '\t' || !is_tchar(b)) {
				return -1; /* obsolete folding, or not a field name */
			} else {
				c->state = C_TRAILER_IN;
			}
			if (++c->trailer > HTTP1_TRAILER_MAX)
				return -1;
			i++;
			break;
		case C_TRAILER_IN:
			if (b == '\r')
				c->state = C_TRAILER_LF;
			else if (!is_field_char(b))
				return -1;
			if (++c->trailer > HTTP1_TRAILER_MAX)
				return -1;
			i++;
			break;
		case C_TRAILER_LF:
			if (b != '\n')
				return -1;
			c->state = C_TRAILER;
			i++;
			break;
		case C_END_LF:
			if (b != '\n')
				return -1;
			i++;
			*done = true;
			memset(c, 0, sizeof(*c));
			return (long)i;
		default:
			return -1;
		}
	}
	return (long)i;
}
