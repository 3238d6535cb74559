# umn — plain GNU make, out-of-tree builds.
#
#   make                      library (static + shared), umn.pc, examples in $(O)
#   make check                the library's test suite (tests/run-all.sh)
#   make kernel-check         the kernel patch series: apply, checkpatch,
#                             build, KUnit under UML (kernel/check.sh)
#   make bench                benchmarks, ratios against a baseline from the same run
#   make demo                 the seed's scenario, and free+malloc caught in a process
#   make install PREFIX=/usr/local DESTDIR=
#
# Variables: O (output dir, default build), CC, SAN (asan | tsan | empty),
# WERROR=1 (warnings are errors), CROSS=1 (library only, no examples/tests).

O       ?= build
CC      ?= cc
SAN     ?=
WERROR  ?=
PREFIX  ?= /usr/local
LIBDIR  ?= $(PREFIX)/lib
INCDIR  ?= $(PREFIX)/include
MANDIR  ?= $(PREFIX)/share/man
DESTDIR ?=

VERSION := 0.1.0
SOMAJOR := 0
SONAME  := libumn.so.$(SOMAJOR)

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wstrict-prototypes \
        -Wpointer-arith -Wcast-qual -Wundef -Wvla -Wformat=2 \
        -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN += -Werror
endif

OPT := -O2 -g
ifeq ($(SAN),asan)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
endif
ifeq ($(SAN),tsan)
OPT := -O1 -g -fno-omit-frame-pointer -fsanitize=thread
endif

CPPFLAGS += -Iinclude -Isrc -DUMN_VERSION=\"$(VERSION)\"
CFLAGS   ?=
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L $(WARN) $(OPT) $(CFLAGS)
LIB_CFLAGS := $(ALL_CFLAGS) -fPIC -fvisibility=hidden
LDLIBS   += -pthread -ldl

# The monitor's architecture folder: x86_64 patches, others build a stub
# that reports ENOTSUP.
ARCH := $(shell $(CC) -dumpmachine | cut -d- -f1)
ifeq ($(wildcard src/monitor/arch/$(ARCH)),)
ARCH_DIR := src/monitor/arch/generic
else
ARCH_DIR := src/monitor/arch/$(ARCH)
endif

LIB_SRC := $(wildcard src/core/*.c src/monitor/*.c $(ARCH_DIR)/*.c $(ARCH_DIR)/*.S \
		     src/rcache/*.c)
LIB_OBJ := $(patsubst %,$(O)/%.o,$(basename $(LIB_SRC)))
HEADERS := $(wildcard include/umn/*.h)

TEST_SRC  := $(wildcard tests/core/*.c tests/monitor/*.c tests/rcache/*.c)
TEST_BIN  := $(TEST_SRC:%.c=$(O)/%)
EX_SRC    := $(wildcard examples/*.c)
EX_BIN    := $(EX_SRC:%.c=$(O)/%)
BENCH_SRC := $(wildcard bench/*.c)
BENCH_BIN := $(BENCH_SRC:%.c=$(O)/%)

.PHONY: all lib tests examples check kernel-check bench demo install clean
all: lib $(if $(CROSS),,examples)
lib: $(O)/libumn.a $(O)/$(SONAME) $(O)/umn.pc
tests: $(TEST_BIN)
examples: $(EX_BIN)

LIB_DEPS := $(HEADERS) $(wildcard src/*/*.h $(ARCH_DIR)/*.h src/sys/arch/*/*.h) Makefile

$(O)/src/%.o: src/%.c $(LIB_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -I$(ARCH_DIR) $(LIB_CFLAGS) -c $< -o $@

$(O)/src/%.o: src/%.S $(LIB_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -I$(ARCH_DIR) $(LIB_CFLAGS) -c $< -o $@

$(O)/libumn.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

# -z defs: no undefined symbol, except under a sanitizer, whose runtime the
# program brings.
$(O)/$(SONAME): $(LIB_OBJ) src/umn.map
	$(CC) $(LIB_CFLAGS) -shared -Wl,-soname,$(SONAME) \
		-Wl,--version-script=src/umn.map $(if $(SAN),,-Wl,-z,defs) \
		-o $(O)/libumn.so.$(VERSION) $(LIB_OBJ) $(LDLIBS)
	ln -sf libumn.so.$(VERSION) $@
	ln -sf $(SONAME) $(O)/libumn.so

# The .pc file names the prefix: install writes it again for the one it uses.
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	     -e 's|@INCLUDEDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' umn.pc.in

$(O)/umn.pc: umn.pc.in Makefile
	@mkdir -p $(@D)
	$(PC_SED) > $@

# Tests link the static library so they can reach internal (hidden) symbols;
# the shared one is built too, for the test that loads a second copy.
$(O)/tests/%: tests/%.c $(O)/libumn.a $(O)/$(SONAME) $(wildcard tests/*/helpers.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests $(ALL_CFLAGS) $< -o $@ $(O)/libumn.a -lcmocka $(LDLIBS)

# The monitor in a statically linked program (no dlopen'able libc there).
$(O)/tests/static/%: tests/static/%.c $(O)/libumn.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -static $< -o $@ $(O)/libumn.a $(LDLIBS)

$(O)/examples/%: examples/%.c $(O)/libumn.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $< -o $@ $(O)/libumn.a $(LDLIBS)

$(O)/bench/%: bench/%.c $(O)/libumn.a $(wildcard bench/*.h)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Ibench $(ALL_CFLAGS) $< -o $@ $(O)/libumn.a $(LDLIBS)

# Each tool and benchmark family with its own rules keeps them in a fragment.
-include $(wildcard tools/*/build.mk bench/build.mk src/*/build.mk src/*/*/build.mk)

check:
	tests/run-all.sh

kernel-check:
	kernel/check.sh $(O)/kernel

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

demo: $(O)/examples/seed_mirror $(O)/examples/stale_registration $(O)/umn
	$(O)/examples/seed_mirror
	$(O)/examples/stale_registration
	$(O)/umn demo uring || [ $$? -eq 77 ]
	$(O)/umn demo mirror || [ $$? -eq 77 ]

install: lib
	install -d $(DESTDIR)$(INCDIR)/umn $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(MANDIR)/man3
	install -m 644 $(HEADERS) $(DESTDIR)$(INCDIR)/umn/
	install -m 644 $(O)/libumn.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(O)/libumn.so.$(VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libumn.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libumn.so
	$(PC_SED) > $(DESTDIR)$(LIBDIR)/pkgconfig/umn.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/umn.pc
	install -m 644 $(wildcard man/man3/*.3) $(DESTDIR)$(MANDIR)/man3/

clean:
	rm -rf $(O)
