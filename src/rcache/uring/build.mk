# src/rcache/uring: the io_uring fixed-buffer backend, its tests and
# `umn demo uring`.  Included by the top Makefile; uses its variables.
#
# liburing is needed by this backend and the demo only, so the backend is a
# library of its own, libumn_uring (.a, and .so linked against libumn.so and
# liburing), never part of libumn.  It is built when liburing's header is
# found (Debian: liburing-dev) and not with CROSS=1; URING=0 or URING=1
# overrides the check.  Without it, tests/uring/* build as programs that
# exit 77 (skipped) saying why, and `umn demo uring` says how to get it.
#
#   make uring               $(O)/libumn_uring.a, $(O)/libumn_uring.so.0
#   make tests               also $(O)/tests/uring/*
#   make demo-uring          $(O)/umn demo uring, once the tool calls it

ifeq ($(origin URING),undefined)
ifeq ($(CROSS),)
URING := $(shell echo 'int f(struct io_uring *r); int f(struct io_uring *r) \
	{ return io_uring_register_buffers_sparse(r, 1); }' | \
	$(CC) $(CPPFLAGS) -fsyntax-only -Werror=implicit-function-declaration \
	-include liburing.h -x c - >/dev/null 2>&1 && echo 1 || echo 0)
else
URING := 0
endif
endif

URING_VERSION := $(VERSION)
URING_SONAME  := libumn_uring.so.$(SOMAJOR)
URING_SRC     := $(wildcard src/rcache/uring/*.c)
URING_OBJ     := $(URING_SRC:%.c=$(O)/%.o)
URING_TESTS   := $(patsubst %.c,$(O)/%,$(wildcard tests/uring/*.c))
URING_MK      := src/rcache/uring/build.mk

# The workload `umn demo uring` shows is the one tests/uring checks.
URING_TOOL_OBJ := $(O)/tools/umn/demo_uring.o
ifeq ($(URING),1)
URING_TOOL_OBJ += $(O)/tools/umn/uring_workload.o
endif

.PHONY: uring demo-uring install-uring
tests: $(URING_TESTS)

$(URING_TOOL_OBJ): $(O)/tools/umn/%.o: tools/umn/%.c $(HEADERS) \
		$(wildcard tools/umn/*.h) $(URING_MK) Makefile
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DUMN_HAVE_URING=$(URING) $(ALL_CFLAGS) -c $< -o $@

# For tools/umn/build.mk: what the umn binary links to have `demo uring`.
UMN_DEMO_OBJS := $(URING_TOOL_OBJ)
$(O)/umn: $(URING_TOOL_OBJ)

ifeq ($(URING),1)

ifeq ($(CROSS),)
all: uring
endif
uring: $(O)/libumn_uring.a $(O)/$(URING_SONAME)

UMN_DEMO_LIBS := $(O)/libumn_uring.a $(O)/libumn.a -luring
$(O)/umn: $(O)/libumn_uring.a $(O)/libumn.a

# The top Makefile's $(O)/src/%.o rule compiles these (-fPIC, hidden).
$(URING_OBJ): $(wildcard src/rcache/uring/*.h) $(URING_MK)

$(O)/libumn_uring.a: $(URING_OBJ)
	rm -f $@
	$(AR) rcs $@ $^

$(O)/$(URING_SONAME): $(URING_OBJ) $(O)/$(SONAME) src/rcache/uring/uring.map
	$(CC) $(LIB_CFLAGS) -shared -Wl,-soname,$(URING_SONAME) \
		-Wl,--version-script=src/rcache/uring/uring.map \
		$(if $(SAN),,-Wl,-z,defs) -o $(O)/libumn_uring.so.$(URING_VERSION) \
		$(URING_OBJ) -L$(O) -lumn -luring $(LDLIBS)
	ln -sf libumn_uring.so.$(URING_VERSION) $@
	ln -sf $(URING_SONAME) $(O)/libumn_uring.so

# A static pattern rule: it wins over the top Makefile's $(O)/tests/% rule.
$(URING_TESTS): $(O)/tests/uring/%: tests/uring/%.c $(O)/libumn_uring.a \
		$(O)/libumn.a $(O)/tools/umn/uring_workload.o \
		$(wildcard tests/uring/*.h tools/umn/*.h) $(URING_MK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DUMN_HAVE_URING=1 -Itests -Itools/umn $(ALL_CFLAGS) \
		$< -o $@ $(O)/tools/umn/uring_workload.o $(O)/libumn_uring.a \
		$(O)/libumn.a -luring -lcmocka $(LDLIBS)

demo-uring: $(O)/umn
	$(O)/umn demo uring

install: install-uring
install-uring: uring
	install -d $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 $(O)/libumn_uring.a $(DESTDIR)$(LIBDIR)/
	install -m 755 $(O)/libumn_uring.so.$(URING_VERSION) $(DESTDIR)$(LIBDIR)/
	ln -sf libumn_uring.so.$(URING_VERSION) $(DESTDIR)$(LIBDIR)/$(URING_SONAME)
	ln -sf $(URING_SONAME) $(DESTDIR)$(LIBDIR)/libumn_uring.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
		-e 's|@INCLUDEDIR@|$(INCDIR)|' -e 's|@VERSION@|$(VERSION)|' \
		src/rcache/uring/umn-uring.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/umn-uring.pc
	chmod 644 $(DESTDIR)$(LIBDIR)/pkgconfig/umn-uring.pc

else

UMN_DEMO_LIBS :=

$(URING_TESTS): $(O)/tests/uring/%: tests/uring/%.c $(URING_MK)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -DUMN_HAVE_URING=0 $(ALL_CFLAGS) $< -o $@

uring:
	@echo "libumn_uring not built: URING=0, or no liburing 2.2 or later found (Debian: apt-get install liburing-dev)"
demo-uring: uring
install-uring:

endif
