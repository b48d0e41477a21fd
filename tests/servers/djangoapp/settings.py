"""Settings of the Django test application (tests/servers/djangoapp).

Everything comes from the environment, so one tree serves both databases:
  APP_DB_ENGINE    postgresql (psycopg2) or mysql (mysqlclient)
  APP_DB_HOST, APP_DB_PORT, APP_DB_NAME, APP_DB_USER, APP_DB_PASSWORD
Production-like: DEBUG off (no query log), a new database connection per
request (CONN_MAX_AGE = 0, Django's default), no middleware, no admin, auth
or contenttypes app: one app, `books`.
"""
import os

BASE_DIR = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "apiprof-test-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["books"]
MIDDLEWARE = []
ROOT_URLCONF = "books.views"
TEMPLATES = []
USE_TZ = True
TIME_ZONE = "UTC"
USE_I18N = False
DEFAULT_AUTO_FIELD = "django.db.models.AutoField"

_engine = os.environ.get("APP_DB_ENGINE", "postgresql")
if _engine not in ("postgresql", "mysql"):
    raise RuntimeError("APP_DB_ENGINE must be postgresql or mysql, not %r" % _engine)
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends." + _engine,
        "HOST": os.environ.get("APP_DB_HOST", "127.0.0.1"),
        "PORT": os.environ.get("APP_DB_PORT", ""),
        "NAME": os.environ.get("APP_DB_NAME", "books"),
        "USER": os.environ.get("APP_DB_USER", ""),
        "PASSWORD": os.environ.get("APP_DB_PASSWORD", ""),
        "CONN_MAX_AGE": 0,
    }
}
if _engine == "mysql":
    DATABASES["default"]["OPTIONS"] = {"charset": "utf8mb4"}

# Tracebacks of failing views on stderr (the gunicorn log), not mailed.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"django.request": {"handlers": ["stderr"], "level": "ERROR", "propagate": False}},
}
