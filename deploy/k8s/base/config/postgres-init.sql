-- One role and one database per Meshwork service, each database owned by its service's role and
-- closed to every other role. The postgres image runs this once, on an empty data directory
-- (/docker-entrypoint-initdb.d, as the superuser). Passwords come from the container environment
-- (<SERVICE>_DB_PASSWORD, from the Secret <service>-db, key password), never from this file.
-- psql 15+ (\getenv). A missing variable leaves :'x' unexpanded: a syntax error stops the init.
\set ON_ERROR_STOP on

\getenv catalog_password CATALOG_DB_PASSWORD
CREATE ROLE catalog LOGIN PASSWORD :'catalog_password';
CREATE DATABASE catalog OWNER catalog;
REVOKE ALL ON DATABASE catalog FROM PUBLIC;

\getenv inventory_password INVENTORY_DB_PASSWORD
CREATE ROLE inventory LOGIN PASSWORD :'inventory_password';
CREATE DATABASE inventory OWNER inventory;
REVOKE ALL ON DATABASE inventory FROM PUBLIC;

\getenv payments_password PAYMENTS_DB_PASSWORD
CREATE ROLE payments LOGIN PASSWORD :'payments_password';
CREATE DATABASE payments OWNER payments;
REVOKE ALL ON DATABASE payments FROM PUBLIC;

\getenv orders_password ORDERS_DB_PASSWORD
CREATE ROLE orders LOGIN PASSWORD :'orders_password';
CREATE DATABASE orders OWNER orders;
REVOKE ALL ON DATABASE orders FROM PUBLIC;

\getenv notifications_password NOTIFICATIONS_DB_PASSWORD
CREATE ROLE notifications LOGIN PASSWORD :'notifications_password';
CREATE DATABASE notifications OWNER notifications;
REVOKE ALL ON DATABASE notifications FROM PUBLIC;
