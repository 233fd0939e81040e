"""Pure array functions: numbers and arrays in, arrays out. No files, headers or logging."""
