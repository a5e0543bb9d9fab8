# The two commands of the README. Everything else is CMake.
BUILD_DIR ?= build
BUILD_TYPE ?= Release
SHARED_DIR ?= $(abspath ../shared)
CMAKE_FLAGS ?=

.PHONY: demo test build configure deps clean models sanitize fuzz tsan check-all

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

# Sanitizer builds (clang; libtorch and OpenBLAS stay uninstrumented).
# ASan + UBSan, with the libFuzzer programs: the fast tests, then `make fuzz`.
SAN_DIR ?= build-asan
TSAN_DIR ?= build-tsan
FUZZ_SECONDS ?= 600
SAN_FLAGS = -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DSTEPVERIFY_BUILD_BENCH=OFF -DSTEPVERIFY_HEADER_CHECK=OFF \
  -DSTEPVERIFY_SHARED_DIR=$(SHARED_DIR)
export ASAN_OPTIONS ?= detect_leaks=0:detect_odr_violation=0:abort_on_error=1
export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1

$(SAN_DIR)/build.ninja: | deps
	@cmake -S . -B $(SAN_DIR) $(SAN_FLAGS) -DSTEPVERIFY_SANITIZE=address,undefined -DSTEPVERIFY_BUILD_FUZZ=ON \
	  > $(SAN_DIR).configure.log 2>&1 || (cat $(SAN_DIR).configure.log; exit 1)

# The shipped-model checks (label "models": retrained quality, 200-problem
# demo runs) are left out here: under ASan they take 7 minutes for code paths
# the search, verifier, training and concurrency groups already run.
sanitize: $(SAN_DIR)/build.ninja
	@cmake --build $(SAN_DIR)
	@cd $(SAN_DIR) && ctest --output-on-failure -LE "slow|package|models" $(CTEST_FLAGS)

# Each fuzz target for FUZZ_SECONDS (make fuzz FUZZ_SECONDS=10 in CI).
fuzz: $(SAN_DIR)/build.ninja
	@cmake --build $(SAN_DIR) --target fuzz_programs
	@bash scripts/fuzz.sh $(SAN_DIR) $(FUZZ_SECONDS)

# ThreadSanitizer on the concurrency stress test (the core library only).
tsan: | deps
	@cmake -S . -B $(TSAN_DIR) $(SAN_FLAGS) -DSTEPVERIFY_SANITIZE=thread > $(TSAN_DIR).configure.log 2>&1 \
	  || (cat $(TSAN_DIR).configure.log; exit 1)
	@cmake --build $(TSAN_DIR) --target stepverify_concurrency
	@TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$(abspath tests/tsan.supp)" \
	  setarch $$(uname -m) -R $(TSAN_DIR)/tests/stepverify_concurrency

# What CI runs: the tests, the sanitizer build and its tests, short fuzz runs, TSan.
check-all: test sanitize
	@$(MAKE) --no-print-directory fuzz FUZZ_SECONDS=10
	@$(MAKE) --no-print-directory tsan

clean:
	rm -rf $(BUILD_DIR) $(BUILD_DIR).configure.log $(SAN_DIR) $(SAN_DIR).configure.log $(TSAN_DIR) $(TSAN_DIR).configure.log
