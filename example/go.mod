module github.com/golangcollege/memstore/example

go 1.25

require (
	github.com/alexedwards/scs/v2 v2.9.0
	github.com/golangcollege/memstore v0.0.0-00010101000000-000000000000
)

replace github.com/golangcollege/memstore => ../
