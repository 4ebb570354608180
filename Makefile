# mmlearn: multi-modal multi-task learning from scratch.
#   make            library + binaries (CPU; CUDA kernels run in the emulator, for tests)
#   make CUDA=1     the same with the real CUDA backend (nvcc, cuBLAS, NCCL), in build-cuda/
#   make test       build and run the doctest suite
#   make bench      op throughput against the machine's measured ceilings
#   make cuda       build the CUDA backend with nvcc for CUDA_ARCH (compile + link check)
#   make study      kernel study folder (cuda/study/) in the emulator; study-gpu: nvcc builds
#   make clean
# ARCH picks the instruction set: the default x86-64-v3 (AVX2+FMA, any x86-64 since
# 2013-2015) runs on other machines; `make ARCH=native` tunes for this host.
# -fno-trapping-math lets GCC vectorise loops with comparisons (the clamps in fast_exp);
# we never read floating-point exception flags.

SHELL     := /bin/bash
ARCH      ?= x86-64-v3
OPT       ?= -O2
CUDA      ?= 0
BUILD     ?= $(if $(filter 1,$(CUDA)),build-cuda,build)
CXX       ?= g++
CXXFLAGS  ?= $(OPT) -march=$(ARCH) -g1
CXXFLAGS  += -std=c++20 -fopenmp-simd -fno-trapping-math -Wall -Wextra -Werror -fPIC -pthread -I. -MMD -MP
CPPFLAGS  += -I/usr/include/x86_64-linux-gnu/openblas-pthread
# --as-needed: a binary depends only on the libraries it uses (build-cuda/bench_models and
# gpu_tests run on a GPU machine that has none of the media, YAML or MPI libraries).
LDLIBS    += -Wl,--as-needed -lyaml-cpp -lsentencepiece -lsentencepiece_train -lavformat -lavcodec -lswresample -lswscale -lavutil \
             -lopenblas -pthread -lm

# MPI (OpenMPI) when its C bindings are installed: runtime/dist then talks MPI; without it
# (or with MPI=0) the same code builds single-process only.
MPI ?= $(shell pkg-config --exists ompi-c && echo 1 || echo 0)
ifeq ($(MPI),1)
CPPFLAGS  += $(shell pkg-config --cflags ompi-c) -DMM_HAVE_MPI=1
LDLIBS    += $(shell pkg-config --libs ompi-c)
endif

# Every .cpp under these folders goes into the library; tests/ and tools/ link it.
LIB_DIRS  := runtime autograd ops ops/cpu models tasks cuda cuda/emu
LIB_SRCS  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.cpp))
# CUDA kernel sources (.cu) also build with g++ against cuda/emu/: the emulator runs them.
CU_SRCS   := $(wildcard cuda/*.cu)
LIB_OBJS  := $(LIB_SRCS:%.cpp=$(BUILD)/obj/%.o) $(CU_SRCS:%.cu=$(BUILD)/obj/%.o)
LIB       := $(BUILD)/libmm.a

TEST_SRCS := $(wildcard tests/*.cpp)
TEST_OBJS := $(TEST_SRCS:%.cpp=$(BUILD)/obj/%.o)
TEST_BIN  := $(BUILD)/run_tests

TOOL_SRCS := $(wildcard tools/*.cpp)
TOOL_BINS := $(TOOL_SRCS:tools/%.cpp=$(BUILD)/%)

# ---- CUDA=1: the real CUDA backend in place of the emulator (build-cuda/) ----------------
# Host .cpp files see the CUDA runtime (MM_CUDA_REAL), cuda/*.cu go through nvcc (rule in
# the CUDA section below), the emulator (cuda/emu/*.cpp) and its own tests stay out, and
# NCCL comes in when its header is found.
CUDA_HOME ?= /usr/local/cuda
ifeq ($(CUDA),1)
NCCL      ?= $(if $(wildcard $(CUDA_HOME)/include/nccl.h),1,0)
CPPFLAGS  += -DMM_CUDA_REAL -I$(CUDA_HOME)/include
LDLIBS    += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublasLt -lcublas -lcudart
ifeq ($(NCCL),1)
CPPFLAGS  += -DMM_HAVE_NCCL
LDLIBS    += -lnccl
endif
LIB_SRCS  := $(filter-out cuda/emu/%,$(LIB_SRCS))
LIB_OBJS  := $(LIB_SRCS:%.cpp=$(BUILD)/obj/%.o) $(CU_SRCS:%.cu=$(BUILD)/cuda/%.o)
TEST_SRCS := $(filter-out tests/test_cuda_emu.cpp,$(TEST_SRCS))
TEST_OBJS := $(TEST_SRCS:%.cpp=$(BUILD)/obj/%.o)
endif

.PHONY: all test test-dist bench bench-dist demo specialists cuda fuzz clean
.SECONDARY:  # keep tools/*.o: they are intermediates of the binaries
all: $(LIB) $(TOOL_BINS) $(TEST_BIN)

$(BUILD)/obj/%.o: %.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.cu
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -x c++ -c $< -o $@

$(LIB): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/%: $(BUILD)/obj/tools/%.o $(LIB)
	$(CXX) $(CXXFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(TEST_BIN): $(TEST_OBJS) $(LIB)
	$(CXX) $(CXXFLAGS) $(TEST_OBJS) $(LIB) $(LDLIBS) -o $@

# Tests run in the repository root so they find tests/data/. The last line restates
# doctest's count as "N passed, N failed" for CI log readers.
# The dist suite launches build/dist_selftest under mpirun (real processes).
test: $(TEST_BIN) $(BUILD)/dist_selftest
	@set -o pipefail; $(TEST_BIN) $(TEST_ARGS) 2>&1 | tee $(BUILD)/test.log; rc=$$?; \
	  awk '/test cases:/ { print "tests: " $$6 " passed, " $$9 " failed" }' $(BUILD)/test.log; exit $$rc

bench: $(BUILD)/bench
	$(BUILD)/bench

# The demo: the real-data suite (built once), one OFA generalist on all eight tasks, its
# test-split scores next to each task's trivial baseline.
demo: $(BUILD)/prepare-data $(BUILD)/train $(BUILD)/eval
	@test -f data/suite.json || $(BUILD)/prepare-data --out data
	$(BUILD)/train configs/demo.yaml --save-dir runs/demo
	$(BUILD)/eval --ckpt runs/demo/checkpoint_best configs/demo.yaml --baselines data/baselines.json

# Each task's specialist with the generalist's budget per task, then the retention table.
SPECIALISTS := $(patsubst configs/specialist_%.yaml,%,$(wildcard configs/specialist_*.yaml))
specialists: $(BUILD)/prepare-data $(BUILD)/train $(BUILD)/eval
	@test -f data/suite.json || $(BUILD)/prepare-data --out data
	set -e; for t in $(SPECIALISTS); do \
	  $(BUILD)/train configs/specialist_$$t.yaml --save-dir runs/specialist_$$t; \
	  $(BUILD)/eval --ckpt runs/specialist_$$t/checkpoint_best configs/specialist_$$t.yaml --out runs/specialist_$$t/eval_test.json; \
	done
	python3 tools/compare_specialists.py runs/demo/checkpoint_best/eval_test.json runs/specialist_*/eval_test.json

test-dist: $(TEST_BIN) $(BUILD)/dist_selftest
	$(TEST_BIN) -ts=dist

ROOT_OK := $(if $(filter 0,$(shell id -u)),--allow-run-as-root)
bench-dist: $(BUILD)/bench_dist
	mpirun -np 2 --oversubscribe $(ROOT_OK) $(BUILD)/bench_dist

# ---- CUDA: compile every kernel source with nvcc (compile + link check; no GPU needed) ----
NVCC      ?= $(CUDA_HOME)/bin/nvcc
CUDA_ARCH ?= sm_80 sm_90
NVCCFLAGS ?= -std=c++20 -O3 -I. -Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror \
             $(foreach a,$(CUDA_ARCH),-gencode arch=compute_$(a:sm_%=%),code=$(a))
CU_GPU_OBJS := $(CU_SRCS:%.cu=$(BUILD)/cuda/%.o)
$(BUILD)/cuda/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@
cuda: $(CU_GPU_OBJS)
	@echo "nvcc built $(words $(CU_GPU_OBJS)) kernel sources for $(CUDA_ARCH)"

# The device suites alone (tests/test_cuda_*.cpp but the emulator's own): a binary to copy
# to a GPU machine that lacks our CPU-side libraries (media, YAML, MPI); it needs the CUDA
# libraries and libopenblas there. See docs/cuda.md.
#   make CUDA=1 MPI=0 NCCL=0 CUDA_ARCH=sm_90 gpu-tests    ->  build-cuda/gpu_tests
GPU_TEST_SRCS := tests/main.cpp $(filter-out tests/test_cuda_emu.cpp,$(wildcard tests/test_cuda_*.cpp))
.PHONY: gpu-tests
gpu-tests: $(BUILD)/gpu_tests
$(BUILD)/gpu_tests: $(GPU_TEST_SRCS:%.cpp=$(BUILD)/obj/%.o) $(LIB)
	$(CXX) $(CXXFLAGS) $(filter %.o,$^) $(LIB) $(LDLIBS) -o $@

# Kernel study (cuda/study/*.cu, docs/cuda.md): numbered versions of one kernel per file.
#   make study       g++ against the emulator (build/study/NAME), each run: checks at small
#                    shapes (the default build only: CUDA=1 leaves the emulator out)
#   make study-gpu   nvcc (build/study-gpu/NAME): checks, then timing at OFA-base; run here
#                    when nvidia-smi sees a GPU, else built only
.PHONY: study study-gpu
STUDY_SRCS := $(wildcard cuda/study/*.cu)
STUDY_BINS := $(STUDY_SRCS:cuda/study/%.cu=$(BUILD)/study/%)
STUDY_GPU_BINS := $(STUDY_SRCS:cuda/study/%.cu=$(BUILD)/study-gpu/%)
$(BUILD)/study/%: cuda/study/%.cu $(LIB)
	@mkdir -p $(dir $@)
	$(CXX) $(CPPFLAGS) $(CXXFLAGS) -x c++ $< -x none $(LIB) $(LDLIBS) -o $@
$(BUILD)/study-gpu/%: cuda/study/%.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP $< -o $@ -lcublasLt -lcublas
study: $(STUDY_BINS)
	@set -e; for b in $^; do echo "== $$b"; $$b; done
study-gpu: $(STUDY_GPU_BINS)
	@if nvidia-smi -L >/dev/null 2>&1; then set -e; for b in $^; do echo "== $$b"; $$b; done; \
	 else echo "no GPU here: built $(words $^) study binaries in $(BUILD)/study-gpu/"; fi

# ---- fuzzing (clang's libFuzzer): 60 s per target, any crash or sanitizer report fails ----
FUZZ_SECONDS ?= 60
FUZZ_FLAGS := -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -I.
$(BUILD)/fuzz_instruction: tools/fuzz/fuzz_instruction.cpp tasks/instruction.cpp tasks/rng.cpp
	@mkdir -p $(BUILD)
	clang++ $(FUZZ_FLAGS) $^ -o $@
$(BUILD)/fuzz_reader: tools/fuzz/fuzz_reader.cpp tasks/dataset.cpp tasks/base64.cpp tasks/discrete.cpp tasks/vocab.cpp tasks/rng.cpp
	@mkdir -p $(BUILD)
	clang++ $(FUZZ_FLAGS) $^ -o $@
fuzz: $(BUILD)/fuzz_instruction $(BUILD)/fuzz_reader
	$(BUILD)/fuzz_instruction -max_total_time=$(FUZZ_SECONDS) -timeout=10
	$(BUILD)/fuzz_reader -max_total_time=$(FUZZ_SECONDS) -timeout=10

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
