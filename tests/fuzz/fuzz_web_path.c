int fuzz_stub_web_path;
