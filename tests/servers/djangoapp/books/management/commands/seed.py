"""manage.py seed: the fixed data the integration tests expect.

Five authors with large explicit ids (917253001..917253005) and five books
(ids 1..5 in a fresh database), one per author, so the N+1 of /books/ looks each author up by a
distinctive number. Titles and names carry distinctive literals ('Secret
Title 4242', 'Writer 7777', ...): the tests check that none of them, nor any
literal of their own traffic, reaches the profiler's output.
"""
from django.core.management.base import BaseCommand
from django.db import transaction

from books.models import Author, Book

AUTHOR_IDS = [917253001 + i for i in range(5)]


class Command(BaseCommand):
    help = "Insert the test data (5 authors, 5 books)."

    def handle(self, *args, **options):
        with transaction.atomic():
            Book.objects.all().delete()
            Author.objects.all().delete()
            for i, aid in enumerate(AUTHOR_IDS):
                author = Author.objects.create(id=aid, name="Writer %d" % (7777 + i))
                Book.objects.create(
                    title="Secret Title %d" % (4242 + i), pages=60310 + i, author=author
                )
        self.stdout.write("seeded %d authors, %d books\n" % (Author.objects.count(), Book.objects.count()))
