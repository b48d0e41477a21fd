/*
 * mysql_decls.h - the few libmysqlclient / libmariadb functions the test
 * programs built at test time call (twomy_mod.c, interposed_my.c), for
 * machines without a MySQL header or development package: the handles are
 * opaque, and each program links against the library's file itself.
 */
#ifndef AP_TEST_MYSQL_DECLS_H
#define AP_TEST_MYSQL_DECLS_H

typedef struct st_mysql MYSQL;
typedef struct st_mysql_res MYSQL_RES;
typedef struct st_mysql_stmt MYSQL_STMT;
typedef char **MYSQL_ROW;

MYSQL *mysql_init(MYSQL *);
MYSQL *mysql_real_connect(MYSQL *, const char *, const char *, const char *, const char *,
                          unsigned int, const char *, unsigned long);
int mysql_query(MYSQL *, const char *);
int mysql_real_query(MYSQL *, const char *, unsigned long);
MYSQL_RES *mysql_store_result(MYSQL *);
MYSQL_ROW mysql_fetch_row(MYSQL_RES *);
unsigned int mysql_num_fields(MYSQL_RES *);
unsigned int mysql_field_count(MYSQL *);
unsigned long long mysql_affected_rows(MYSQL *);
void mysql_free_result(MYSQL_RES *);
const char *mysql_error(MYSQL *);
unsigned int mysql_errno(MYSQL *);
void mysql_close(MYSQL *);
MYSQL_STMT *mysql_stmt_init(MYSQL *);
int mysql_stmt_prepare(MYSQL_STMT *, const char *, unsigned long);
int mysql_stmt_execute(MYSQL_STMT *);
char mysql_stmt_close(MYSQL_STMT *);
const char *mysql_stmt_error(MYSQL_STMT *);
int mysql_stmt_store_result(MYSQL_STMT *);
unsigned long long mysql_stmt_num_rows(MYSQL_STMT *);
int mysql_stmt_fetch(MYSQL_STMT *);
char mysql_stmt_free_result(MYSQL_STMT *);
void mysql_server_end(void);

#endif
