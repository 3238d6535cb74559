# bench/monitor_ucm: the monitor benchmark beside UCX's ucm hooks.  It needs
# ucm's header to build (libucx-dev) and loads UCX itself at run time, so
# it is built only where the header is; `make bench` never needs UCX.
UCM_HEADER := $(wildcard /usr/include/ucm/api/ucm.h)

ifeq ($(UCM_HEADER),)
BENCH_BIN := $(filter-out $(O)/bench/monitor_ucm,$(BENCH_BIN))
endif
