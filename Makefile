# ngx_http_llmd_module: build, unit tests and the prove suite.
#   make          build/ngx_http_llmd_module.so and every tool
#   make test     install what is missing, build, run every test (prove -r t/)
#   make demo     the main job (after the simulator exists)
SHELL := /bin/bash
TOP   := $(abspath .)
BUILD := $(TOP)/build
CC    ?= cc

CORE_CFLAGS := -std=gnu11 -g -O2 -fPIC -Wall -Wextra -Werror \
               -Wno-unused-parameter -I$(TOP)/src -I/usr/include/cjson
CORE_LIBS   := -lcjson -lyaml -lxxhash -lm

# Extra flags for sanitizer runs: make test SAN=address
ifeq ($(SAN),address)
CORE_CFLAGS += -fsanitize=address,undefined -fno-omit-frame-pointer
CORE_LIBS   += -fsanitize=address,undefined
endif

# Each layer of src/ (docs/architecture.md) has its mk/<layer>.mk: the objects
# it builds (named by their path under src/, e.g. core/llmd_config), its unit
# tests in UNIT_TESTS and the objects a test links in UNIT_DEPS_<test>.
UNIT_TESTS :=
TOOLS      :=
objs = $(addprefix $(BUILD)/obj/,$(addsuffix .o,$(1)))

.PHONY: all module unit tools test deps clean demo
all: module unit tools

include mk/core.mk mk/kv.mk mk/tokenizer.mk mk/module.mk mk/sim.mk \
    mk/loadgen.mk mk/fuzz.mk

$(BUILD)/obj/%.o: src/%.c $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CORE_CFLAGS) -c $< -o $@

$(BUILD)/unit $(BUILD)/bin:
	mkdir -p $@

# Relative names work too: make build/unit/test_prom
build/%: $(BUILD)/% ;

# Keep objects made on the way to a relative target.
.SECONDARY:

define unit_rule
$(BUILD)/unit/$(1): t/unit/$(1).c $$(call objs,$$(UNIT_DEPS_$(1))) | $(BUILD)/unit
	$$(CC) $$(CORE_CFLAGS) $$^ -o $$@ -lcmocka $$(CORE_LIBS) $$(UNIT_LIBS_$(1))
endef
$(foreach t,$(UNIT_TESTS),$(eval $(call unit_rule,$(t))))

unit: $(addprefix $(BUILD)/unit/,$(UNIT_TESTS))
tools: $(TOOLS)

deps:
	@scripts/deps.sh

test: deps
	$(MAKE) all
	prove -r t/

demo: deps
	$(MAKE) all
	scripts/demo.sh

clean:
	rm -rf $(BUILD) t/servroot*
