int fuzz_stub_admission;
