"""SQLAlchemy 2 async Core adapters: tables, engine, repositories, unit of work, migrations."""
