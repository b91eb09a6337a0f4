// SPDX-License-Identifier: Apache-2.0
// Compiles the C NULL/UTF-8 test as C++: proves the generated header's cpp_compat.
#include "test_null.c"
