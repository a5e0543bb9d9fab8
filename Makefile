# The two commands of the README. Everything else is CMake.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
SHARED_DIR ?= $(abspath ../shared)
CMAKE_FLAGS ?=

.PHONY: demo test build configure deps clean models

deps:
	@bash scripts/install_deps.sh

configure: deps
	@cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) \
	  -DSTEPVERIFY_SHARED_DIR=$(SHARED_DIR) $(CMAKE_FLAGS) > $(BUILD_DIR).configure.log 2>&1 \
	  || (cat $(BUILD_DIR).configure.log; exit 1)

build: configure
	@cmake --build $(BUILD_DIR)

demo: configure
	@cmake --build $(BUILD_DIR) --target stepverify_cli
	@$(BUILD_DIR)/stepverify demo --models models

# Retrains the shipped tokenizer, policy and verifier from scratch (seeded).
models: configure
	@cmake --build $(BUILD_DIR) --target stepverify_cli
	@$(BUILD_DIR)/stepverify models --out models

test: build
	@cd $(BUILD_DIR) && ctest --output-on-failure -LE slow $(CTEST_FLAGS)

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log
