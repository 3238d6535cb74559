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
