#ifndef SINEW_FUZZ_CHECK_H
#define SINEW_FUZZ_CHECK_H

/* CHECK(cond): a property a fuzz target asserts about the code under test.
 * A false one traps, so libFuzzer records the input as a crash (assert()
 * would vanish under NDEBUG). */
#define CHECK(cond)                                                            \
	do {                                                                   \
		if (!(cond))                                                   \
			__builtin_trap();                                      \
	} while (0)

#endif
