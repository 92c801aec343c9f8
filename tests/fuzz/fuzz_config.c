int fuzz_stub_config;
