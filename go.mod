module github.com/golangcollege/memstore

go 1.25
