# SPDX-License-Identifier: Apache-2.0
# meshlet's build: three daemons over one static library, unit and integration tests.
# GNU make. `make help` lists the targets; `V=1` shows the commands.

VERSION    := $(shell cat VERSION)
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
DESTDIR    ?=
BUILD      ?= build
PKG_CONFIG ?= pkg-config
PYTHON     ?= /usr/bin/python3
CLANG      ?= clang
FUZZ_SECONDS ?= 20

PKGS := libmicrohttpd openssl jansson yaml-0.1

# Debian packages that building and testing need; `make deps` installs the missing ones.
DEB_BUILD := gcc make pkgconf libc6-dev libmicrohttpd-dev libssl-dev libjansson-dev \
	libyaml-dev libcmocka-dev
DEB_TEST  := python3 python3-pytest python3-cryptography python3-jsonpatch python3-yaml \
	openssl curl iproute2 iptables clang libclang-rt-14-dev tcpdump
DEB_PKGS  := $(DEB_BUILD) $(DEB_TEST)
# What make demo needs beyond the build: namespaces, iptables, a capture, clients.
DEB_DEMO  := iproute2 iptables tcpdump curl openssl python3
# What the benchmark scripts in bench/ drive the daemons with.
DEB_BENCH := wrk openssl curl nginx-light libnginx-mod-stream iperf3 stunnel4 haproxy python3 \
	gnuplot-nox

ifeq ($(V),1)
Q :=
msg = @true
else
Q := @
msg = @printf '  %-7s %s\n' $(1) $(2)
endif

WARNINGS := -Wall -Wextra -Wstrict-prototypes -Wmissing-prototypes -Wshadow \
	-Wpointer-arith -Wcast-qual -Wformat=2
CFLAGS   ?= -O2 -g
LDFLAGS  ?=

PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
PKG_OK     := $(shell $(PKG_CONFIG) --exists $(PKGS) 2>/dev/null && echo yes)

ALL_CFLAGS := -std=c11 -D_GNU_SOURCE $(CFLAGS) $(WARNINGS) -MMD -MP -Iinclude -I. \
	$(PKG_CFLAGS) -DMESHLET_VERSION='"$(VERSION)"'
# --as-needed: a program links only the libraries it uses (the proxy needs no libmicrohttpd).
ALL_LDFLAGS := -Wl,--as-needed $(LDFLAGS)
ifeq ($(WERROR),1)
ALL_CFLAGS += -Werror
endif
ifneq ($(SANITIZE),)
ALL_CFLAGS  += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all -fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=$(SANITIZE)
endif
LIBS := $(PKG_LIBS) -lpthread

LIB_SRCS     := $(wildcard lib/*.c)
LIB_OBJS     := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIBMESHLET   := $(BUILD)/lib/libmeshlet.a
PROGRAMS     := ca webhook proxy
BINS         := $(PROGRAMS:%=$(BUILD)/bin/meshlet-%)

UNIT_SRCS    := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS    := $(UNIT_SRCS:%.c=$(BUILD)/%)
FUZZ_SRCS    := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS    := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)

ALL_OBJS := $(LIB_OBJS) $(foreach p,$(PROGRAMS),$(patsubst %.c,$(BUILD)/%.o,$(wildcard $(p)/*.c))) \
	$(UNIT_SRCS:%.c=$(BUILD)/%.o)

.PHONY: all test unit integration valgrind demo deps deps-bench bench-report docs install uninstall clean format fuzz help check-pkgs FORCE
.DEFAULT_GOAL := all

all: $(BINS)

help:
	@echo 'make            build build/bin/meshlet-{ca,webhook,proxy}'
	@echo 'make demo       run the whole mesh on this machine, narrated (root: network namespaces)'
	@echo 'make test       build everything, run unit and integration tests'
	@echo 'make valgrind   the integration tests of the three daemons under valgrind memcheck (~4 min)'
	@echo 'make deps       install the Debian packages the build and tests need'
	@echo 'make deps-bench install what the scripts in bench/ need (wrk)'
	@echo 'make bench-report  fresh bench/ runs -> docs/benchmarks.md and its charts (~7 min; SOAK=dir adds a soak)'
	@echo 'make docs       regenerate the key tables in docs/configuration.md'
	@echo 'make fuzz       run each libFuzzer harness for FUZZ_SECONDS (default 20)'
	@echo 'make install    install the binaries into $$(DESTDIR)$$(BINDIR)'
	@echo 'make format     apply .clang-format to every C file'
	@echo 'make clean      remove build/'
	@echo 'variables: V=1 WERROR=1 SANITIZE=address,undefined PREFIX=... DESTDIR=...'

check-pkgs:
ifneq ($(PKG_OK),yes)
	@echo 'error: pkg-config cannot find $(PKGS); run "make deps" first' >&2; exit 1
endif

# Rebuild everything when the compiler flags change (SANITIZE=, WERROR=, CFLAGS=).
$(BUILD)/.cflags: FORCE | check-pkgs
	@mkdir -p $(BUILD)
	@echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' | cmp -s - $@ || \
		echo '$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS)' > $@

$(BUILD)/%.o: %.c $(BUILD)/.cflags
	@mkdir -p $(@D)
	$(call msg,CC,$@)
	$(Q)$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBMESHLET): $(LIB_OBJS)
	$(call msg,AR,$@)
	$(Q)rm -f $@ && $(AR) rcs $@ $^

# Each program is its main.o plus its other objects, which its unit tests link too.
define program_rules
$(1)_OBJS := $$(patsubst %.c,$$(BUILD)/%.o,$$(filter-out $(1)/main.c,$$(wildcard $(1)/*.c)))

$$(BUILD)/bin/meshlet-$(1): $$(BUILD)/$(1)/main.o $$($(1)_OBJS) $$(LIBMESHLET)
	@mkdir -p $$(@D)
	$$(call msg,LD,$$@)
	$$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LIBS)

$$(filter $$(BUILD)/tests/unit/$(1)/%,$$(UNIT_BINS)): $$(BUILD)/tests/unit/$(1)/%: \
		$$(BUILD)/tests/unit/$(1)/%.o $$($(1)_OBJS) $$(LIBMESHLET)
	$$(call msg,LD,$$@)
	$$(Q)$$(CC) $$(ALL_LDFLAGS) -o $$@ $$^ $$(LIBS) -lcmocka
endef
$(foreach p,$(PROGRAMS),$(eval $(call program_rules,$(p))))

$(filter $(BUILD)/tests/unit/lib/%,$(UNIT_BINS)): $(BUILD)/tests/unit/lib/%: \
		$(BUILD)/tests/unit/lib/%.o $(LIBMESHLET)
	$(call msg,LD,$@)
	$(Q)$(CC) $(ALL_LDFLAGS) -o $@ $^ $(LIBS) -lcmocka

test: $(BINS) $(UNIT_BINS)
	$(Q)BUILD=$(BUILD) PYTHON=$(PYTHON) bash tests/run.sh

unit: $(UNIT_BINS)
	$(Q)BUILD=$(BUILD) PYTHON=$(PYTHON) bash tests/run.sh unit

integration: $(BINS)
	$(Q)BUILD=$(BUILD) PYTHON=$(PYTHON) bash tests/run.sh integration

# The daemons' integration tests with every daemon under valgrind memcheck (conftest.py
# daemon_argv), then tests/valgrind-check.py over the logs: no definite leak, no invalid
# access, no uninitialised value used by our code. Too slow for .ci/run.
VALGRIND_TESTS := tests/integration/test_ca.py tests/integration/test_ca_tokenreview.py \
	tests/integration/test_ca_jwks_url.py tests/integration/test_webhook.py \
	tests/integration/test_proxy_run.py tests/integration/test_proxy_policy.py \
	tests/integration/test_proxy_tunnel.py tests/integration/test_proxy_mux.py

valgrind: $(BINS)
	@command -v valgrind >/dev/null || { echo 'error: valgrind is not installed (apt-get install valgrind)' >&2; exit 1; }
	$(Q)rm -rf $(BUILD)/valgrind && mkdir -p $(BUILD)/valgrind
	$(Q)MESHLET_BUILD=$(BUILD) MESHLET_VALGRIND=$(abspath $(BUILD))/valgrind \
		$(PYTHON) -m pytest -p no:cacheprovider -q -rfEs $(VALGRIND_TESTS); tests=$$?; \
	$(PYTHON) tests/valgrind-check.py $(BUILD)/valgrind && [ $$tests -eq 0 ]

# libFuzzer harnesses are built by clang with their own flags, apart from the main build.
FUZZ_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude $(PKG_CFLAGS) \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -DMESHLET_VERSION='"$(VERSION)"'

$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS) $(wildcard include/meshlet/*.h) | check-pkgs
	@mkdir -p $(@D)
	$(call msg,FUZZ,$@)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -o $@ $< $(LIB_SRCS) $(LIBS)

# The identity tests run a real meshlet-ca.
$(BUILD)/tests/unit/proxy/test_identity: | $(BUILD)/bin/meshlet-ca

# Harnesses that include a program's source file say so here.
$(BUILD)/fuzz/fuzz_csr: ca/csr.c ca/csr.h
$(BUILD)/fuzz/fuzz_review: $(wildcard webhook/*.[ch])
$(BUILD)/fuzz/fuzz_preamble: proxy/preamble.c proxy/preamble.h
$(BUILD)/fuzz/fuzz_hello: proxy/hello.c proxy/hello.h
$(BUILD)/fuzz/fuzz_mux_frame: proxy/mux_frame.c proxy/mux.h
$(BUILD)/fuzz/fuzz_http1: proxy/http1.c proxy/http1.h proxy/httpflow.c proxy/httpflow.h
$(BUILD)/fuzz/fuzz_policy: proxy/http1.c proxy/http1.h proxy/policy.c proxy/policy.h \
	proxy/policy_impl.h proxy/policy_load.c

fuzz: $(FUZZ_BINS)
	$(Q)for f in $(FUZZ_BINS); do \
		name=$${f##*/}; corpus=tests/fuzz/corpus/$${name#fuzz_}; \
		work=$(BUILD)/fuzz/work/$${name#fuzz_}; mkdir -p $$work; \
		echo "== $$name for $(FUZZ_SECONDS)s"; \
		$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 $$work $$corpus \
			2>$(BUILD)/fuzz/$$name.log || { tail -n 40 $(BUILD)/fuzz/$$name.log; exit 1; }; \
		grep -E '^stat::(number_of_executed_units|peak_rss_mb)|cov:' $(BUILD)/fuzz/$$name.log | tail -n 3; \
	done

# docs/configuration.md carries each program's key table as --config-reference prints it.
docs: $(BINS)
	$(Q)for p in $(PROGRAMS); do \
		$(BUILD)/bin/meshlet-$$p --config-reference > $(BUILD)/reference-$$p.md || exit 1; \
		awk -v b="<!-- begin meshlet-$$p reference -->" -v e="<!-- end meshlet-$$p reference -->" \
			-v f=$(BUILD)/reference-$$p.md \
			'$$0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next } \
			 $$0 == e { skip = 0 } !skip' docs/configuration.md > $(BUILD)/configuration.md && \
		mv $(BUILD)/configuration.md docs/configuration.md || exit 1; \
	done

# The whole mesh on this machine (demo/demo.sh); as root it installs what is missing first
# (only what the build and the demo need, not the test tools).
demo:
	@if [ "$$(id -u)" = 0 ]; then \
		$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_BUILD) $(DEB_DEMO)"; fi
	@$(MAKE) --no-print-directory all
	@bash demo/demo.sh $(BUILD)

deps-bench:
	@$(MAKE) --no-print-directory deps DEB_PKGS="$(DEB_BENCH)"

# docs/benchmarks.md and docs/img/bench-*.png from fresh runs of bench/{proxy,webhook,ca}.sh
# (bench/report.sh); SOAK=DIR adds the figures of `BENCH_OUT=DIR bench/soak.sh`.
bench-report: $(BINS)
	@if [ "$$(id -u)" = 0 ]; then $(MAKE) --no-print-directory deps-bench; fi
	$(Q)bash bench/report.sh $(if $(SOAK),-S $(SOAK))

deps:
	@missing=$$(for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || echo $$p; \
	done); \
	if [ -z "$$missing" ]; then echo 'deps: all Debian packages are installed'; \
	elif [ "$$(id -u)" = 0 ]; then \
		ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || apt-get update -q; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	else echo "deps: not root; run: sudo apt-get install -y" $$missing; fi

install: $(BINS)
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/

uninstall:
	rm -f $(PROGRAMS:%=$(DESTDIR)$(BINDIR)/meshlet-%)

format:
	clang-format -i $(wildcard include/meshlet/*.h lib/*.c ca/*.[ch] webhook/*.[ch] proxy/*.[ch] \
		tests/unit/*/*.c tests/fuzz/*.c)

clean:
	rm -rf $(BUILD)

-include $(ALL_OBJS:.o=.d)
