"""The MongoDB-wire server (FerretDB runner) answers pymongo CRUD and enforces a unique index."""

import uuid

import pymongo
import pytest
from pymongo.errors import DuplicateKeyError


def test_insert_find_unique_index(mongo_url: str) -> None:
    client = pymongo.MongoClient(mongo_url, serverSelectionTimeoutMS=5000)
    db = client[f"smoke_{uuid.uuid4().hex[:12]}"]
    try:
        users = db.users
        users.create_index("email", unique=True)
        users.insert_one({"_id": "u1", "email": "ada@example.com", "skills": ["trio"]})
        assert users.find_one({"email": "ada@example.com"}) == {
            "_id": "u1", "email": "ada@example.com", "skills": ["trio"],
        }
        with pytest.raises(DuplicateKeyError):
            users.insert_one({"_id": "u2", "email": "ada@example.com"})
        assert users.count_documents({}) == 1
    finally:
        client.drop_database(db.name)
        client.close()
