// stepverify/export.h: STEPVERIFY_API marks the classes and functions the
// stepverify libraries export. The libraries build with hidden default
// visibility (CMake's CXX_VISIBILITY_PRESET), so only what carries the mark is
// part of their ABI; the rest stays internal to each shared object.
//
// Thread safety: not applicable (a macro).
#pragma once

#if defined(_WIN32) || defined(__CYGWIN__)
#if defined(STEPVERIFY_BUILDING)
#define STEPVERIFY_API __declspec(dllexport)
#else
#define STEPVERIFY_API __declspec(dllimport)
#endif
#else
#define STEPVERIFY_API __attribute__((visibility("default")))
#endif
