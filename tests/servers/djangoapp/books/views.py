"""The views of the test application, and its URLs (ROOT_URLCONF).

Statements each view runs itself (the session statements Django or the
driver add per connection come on top; see tests/integration/django_pg.sh):
  GET  /books/        1 + N: the books, then each book's author, one query per
                      book (the N+1 the profiler must flag)
  GET  /books/<id>/   2: the book, then its author
  POST /books/new     1: INSERT of a book (form fields title, author, pages)
  GET  /boom/         1: a count, then an exception (500)
  GET  /slow/         1: a 200 ms sleep in the database
"""
from django.db import connection
from django.http import Http404, HttpResponseBadRequest, JsonResponse
from django.urls import path
from django.views.decorators.http import require_GET, require_POST

from .models import Book


@require_GET
def book_list(request):
    books = [
        {"id": b.id, "title": b.title, "author": b.author.name}
        for b in Book.objects.order_by("id")
    ]
    return JsonResponse({"books": books})


@require_GET
def book_detail(request, pk):
    try:
        book = Book.objects.get(pk=pk)
    except Book.DoesNotExist:
        raise Http404("no such book")
    return JsonResponse(
        {"id": book.id, "title": book.title, "pages": book.pages, "author": book.author.name}
    )


@require_POST
def book_new(request):
    try:
        book = Book.objects.create(
            title=request.POST["title"],
            author_id=int(request.POST["author"]),
            pages=int(request.POST.get("pages", "0")),
        )
    except (KeyError, ValueError):
        return HttpResponseBadRequest("title and author are required\n")
    return JsonResponse({"id": book.id}, status=201)


@require_GET
def boom(request):
    n = Book.objects.count()
    raise RuntimeError("boom with %d books" % n)


@require_GET
def slow(request):
    with connection.cursor() as cur:
        if connection.vendor == "postgresql":
            cur.execute("SELECT pg_sleep(0.2)")
        else:
            cur.execute("SELECT SLEEP(0.2)")
        cur.fetchall()
    return JsonResponse({"slept_ms": 200})


urlpatterns = [
    path("books/", book_list),
    path("books/<int:pk>/", book_detail),
    path("books/new", book_new),
    path("boom/", boom),
    path("slow/", slow),
]
