# sql.mk - the SQL subsystem's extra targets.
#   make sqllogictest   every shared sqllogictest script through our engine (CPU)
.PHONY: sqllogictest
SQL_SLT_SCRIPTS = $(wildcard ../shared/sqllogictest/evidence/*.test ../shared/sqllogictest/random/groupby/*.test)
sqllogictest: all
	$(BIN) sqllogictest --device cpu $(SQL_SLT_SCRIPTS)
