int fuzz_stub_spice_link;
