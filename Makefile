# Convenience wrapper around CMake. `make test` works on a bare Debian 12 machine: it installs
# missing packages (scripts/bootstrap), builds with -Werror, runs the suite, then runs it again
# under ASan+UBSan and runs the fuzz targets for a bounded time.
BUILD ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
JOBS ?= $(shell nproc)

.PHONY: all build test test-fast test-asan fuzz bench clean

all: build

build:
	./scripts/bootstrap

test: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)
	$(MAKE) test-asan
	$(MAKE) fuzz

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j$(JOBS)

test-asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKURA_WERROR=ON -DKURA_SANITIZE=ON
	cmake --build $(ASAN_BUILD) -j$(JOBS)
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
		ctest --output-on-failure -j$(JOBS) -LE slow

fuzz:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DKURA_FUZZ=ON -DKURA_SANITIZE=ON
	cmake --build $(FUZZ_BUILD) -j$(JOBS)
	./scripts/run-fuzz $(FUZZ_BUILD) $(FUZZ_SECONDS)

bench: build
	./bench/run

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
