# tests/fuzz/fuzz.mk - builds the libFuzzer harnesses with clang (GNU make).
#
# Not an Automake file: the product is built with the configured compiler,
# while libFuzzer needs clang and its own instrumentation, so the harnesses
# and the sources they test are compiled again here, with
# -fsanitize=fuzzer,address,undefined, into OUT. Invoked by
# tests/fuzz/run.sh (`make check` and `make fuzz`):
#
#   make -f tests/fuzz/fuzz.mk SRCDIR=... BUILDDIR=... OUT=...
#
# BUILDDIR is a configured build tree (for config.h).
CLANG ?= clang
SRCDIR ?= .
BUILDDIR ?= $(SRCDIR)
OUT ?= $(BUILDDIR)/tests/fuzz/bin

FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN) \
	-I$(BUILDDIR) -I$(SRCDIR)/shared -I$(SRCDIR)/collector \
	$(shell pkg-config --cflags libmicrohttpd sqlite3 libpq jansson libcurl $(FUZZ_DW))
FUZZ_LIBS = $(shell pkg-config --libs libmicrohttpd sqlite3 libpq jansson libcurl $(FUZZ_DW)) -lpthread -lm
# libdw when the build found it (the collector's crash symbolisation uses it)
FUZZ_DW = $(if $(shell grep -s 'define HAVE_LIBDW 1' $(BUILDDIR)/config.h),libdw)

# Every source of the shared library and of the collector's library (all of
# collector/ but the programs' own files), so new modules need no edit here.
SHARED_SRC = $(notdir $(wildcard $(SRCDIR)/shared/*.c))
COLLECTOR_SRC = $(filter-out main.c cli.c cli_%.c,$(notdir $(wildcard $(SRCDIR)/collector/*.c)))
# Sources the build generates (dashboard_assets.c) are in the build tree,
# which for an out-of-tree build is not the source tree.
COLLECTOR_GEN = $(filter-out $(notdir $(wildcard $(SRCDIR)/collector/*.c)),\
	$(notdir $(wildcard $(BUILDDIR)/collector/*.c)))
SHARED_OBJ = $(addprefix $(OUT)/obj/shared_,$(SHARED_SRC:.c=.o))
COLLECTOR_OBJ = $(addprefix $(OUT)/obj/collector_,$(COLLECTOR_SRC:.c=.o)) \
	$(addprefix $(OUT)/obj/collector_gen_,$(COLLECTOR_GEN:.c=.o))

FUZZERS = fuzz_http fuzz_wire fuzz_sql fuzz_config fuzz_api fuzz_json fuzz_hpack fuzz_h2 fuzz_fcgi
all: $(addprefix $(OUT)/,$(FUZZERS))
print-sources:
	@echo shared: $(SHARED_SRC)
	@echo collector: $(COLLECTOR_SRC)
	@echo generated: $(COLLECTOR_GEN)

$(OUT)/obj/shared_%.o: $(SRCDIR)/shared/%.c $(wildcard $(SRCDIR)/shared/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(OUT)/obj/collector_%.o: $(SRCDIR)/collector/%.c $(wildcard $(SRCDIR)/collector/*.h $(SRCDIR)/shared/*.h)
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(OUT)/obj/collector_gen_%.o: $(BUILDDIR)/collector/%.c
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(OUT)/fuzz_http $(OUT)/fuzz_sql $(OUT)/fuzz_config $(OUT)/fuzz_hpack $(OUT)/fuzz_h2 $(OUT)/fuzz_fcgi: $(OUT)/%: $(SRCDIR)/tests/fuzz/%.c $(SHARED_OBJ)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(SHARED_OBJ) -o $@ $(FUZZ_LIBS)
$(OUT)/fuzz_wire $(OUT)/fuzz_api $(OUT)/fuzz_json: $(OUT)/%: $(SRCDIR)/tests/fuzz/%.c $(SHARED_OBJ) $(COLLECTOR_OBJ)
	$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(COLLECTOR_OBJ) $(SHARED_OBJ) -o $@ $(FUZZ_LIBS)

.PHONY: all print-sources
