# src/mirror: the device mirror, built into libumn; its tests in tests/mirror.
# Included by the top Makefile after LIB_OBJ and the library rules: the
# objects are added as prerequisites of both libraries (the rules use $^ and
# $(LIB_OBJ) in their recipes, so both pick them up).

MIRROR_OBJ := $(patsubst %.c,$(O)/%.o,$(wildcard src/mirror/*.c))
LIB_OBJ += $(MIRROR_OBJ)
$(O)/libumn.a $(O)/$(SONAME): $(MIRROR_OBJ)

MIRROR_TEST_BIN := $(patsubst %.c,$(O)/%,$(wildcard tests/mirror/*.c))
tests: $(MIRROR_TEST_BIN)
$(MIRROR_TEST_BIN): $(wildcard tests/mirror/*.h)

# The workload `umn demo mirror` shows is the one the concurrent tests check.
MIRROR_TOOL_OBJ := $(O)/tools/umn/demo_mirror.o
MIRROR_WL_TESTS := $(O)/tests/mirror/process_concurrent $(O)/tests/mirror/user_concurrent

$(MIRROR_TOOL_OBJ): $(O)/tools/umn/%.o: tools/umn/%.c tools/umn/demo_mirror.h \
		$(HEADERS) src/mirror/build.mk Makefile
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c $< -o $@

# A static pattern rule: it wins over the top Makefile's $(O)/tests/% rule.
$(MIRROR_WL_TESTS): $(O)/tests/mirror/%: tests/mirror/%.c $(MIRROR_TOOL_OBJ) \
		$(O)/libumn.a $(wildcard tests/*/helpers.h) src/mirror/build.mk
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itests -Itools/umn $(ALL_CFLAGS) $< -o $@ \
		$(MIRROR_TOOL_OBJ) $(O)/libumn.a -lcmocka $(LDLIBS)
