# tools/umn: the `umn` command and the library `umn trace` preloads.
# Included by the top Makefile; uses its variables.
#
# Not built with CROSS=1 (library only), and the preload not under a
# sanitizer: a sanitized library cannot be preloaded into programs that do
# not carry the sanitizer's runtime.

UMN_TOOL_DEPS := $(HEADERS) tools/umn/build.mk Makefile

.PHONY: tools install-tools
tools: $(O)/umn $(if $(SAN),,$(O)/libumn-trace.so)

ifeq ($(CROSS),)
all: tools
endif

$(O)/umn: tools/umn/umn.c $(UMN_TOOL_DEPS) $(O)/tools/umn/demo_mirror.o $(O)/libumn.a
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) $< $(UMN_DEMO_OBJS) $(O)/tools/umn/demo_mirror.o \
		-o $@ $(UMN_DEMO_LIBS) $(O)/libumn.a $(LDLIBS)

$(O)/tools/umn/trace_preload.o: tools/umn/trace_preload.c $(UMN_TOOL_DEPS)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(LIB_CFLAGS) -c $< -o $@

# The static library's objects are -fPIC and hidden, so the preload carries
# its own umn and needs no LD_LIBRARY_PATH; the version script exports
# nothing, so it never interposes on a libumn.so the program itself uses.
$(O)/libumn-trace.so: $(O)/tools/umn/trace_preload.o $(O)/libumn.a tools/umn/trace.map
	$(CC) $(LIB_CFLAGS) -shared -Wl,--version-script=tools/umn/trace.map -Wl,-z,defs \
		-o $@ $< $(O)/libumn.a $(LDLIBS)

install: install-tools
install-tools: tools
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/umn $(DESTDIR)$(MANDIR)/man1
	install -m 755 $(O)/umn $(DESTDIR)$(PREFIX)/bin/
	install -m 644 $(O)/libumn-trace.so $(DESTDIR)$(LIBDIR)/umn/
	install -m 644 man/man1/umn.1 $(DESTDIR)$(MANDIR)/man1/
