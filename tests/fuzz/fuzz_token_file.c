int fuzz_stub_token_file;
