/* Runs every unit suite; exits non-zero if any test failed. */
#include "config.h"
#include "check_suites.h"

#include <stdlib.h>

int main(void)
{
	SRunner *sr = srunner_create(wire_suite());
	srunner_add_suite(sr, http_suite());
	srunner_add_suite(sr, route_suite());
	srunner_add_suite(sr, config_suite());
	srunner_add_suite(sr, sketch_suite());
	srunner_add_suite(sr, agg_suite());
	srunner_add_suite(sr, colutil_suite());
	srunner_add_suite(sr, ingest_suite());
	srunner_add_suite(sr, store_suite());
	srunner_add_suite(sr, sql_suite());
	srunner_add_suite(sr, sqlreq_suite());
	srunner_add_suite(sr, sqlagg_suite());
	srunner_add_suite(sr, sqlstore_suite());
	srunner_add_suite(sr, sqlingest_suite());
	srunner_add_suite(sr, regress_suite());
	srunner_add_suite(sr, windows_suite());
	srunner_add_suite(sr, metrics_suite());
	srunner_add_suite(sr, crash_suite());
	srunner_add_suite(sr, profile_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
